"""Benchmarks: rates and ratios to raw infrastructure measured in the same run."""
