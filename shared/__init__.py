"""Cordon's common kernel: what every service stands on."""
