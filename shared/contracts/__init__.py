"""Every event contract, by producing service. Importing this package fills the catalogue."""

from shared.contracts import registry, testing

__all__ = ["registry", "testing"]
