"""Every event contract, by producing service. Importing this package fills the catalogue."""

from shared.contracts import logistics, notify, registry, testing

__all__ = ["logistics", "notify", "registry", "testing"]
