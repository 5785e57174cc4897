"""Every event contract, by producing service. Importing this package fills the catalogue."""

from shared.contracts import registry

__all__ = ["registry"]
