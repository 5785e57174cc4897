"""A reusable projection of the registry (places and grids, households, residents with tags
and phones, zones, staff and volunteers, assignments) for any service that needs one: map
its tables on the service's base with :func:`define_directory`, add
``Directory(models).consumer()`` to its consumers and ``Directory`` to its projections, and
give it a migration creating the ``directory_*`` tables. It is fed by the registry's events
and re-syncs, applied in stream order, and says how far behind it is."""

from shared.directory.lag import Lag
from shared.directory.projection import Directory, SnapshotNotStarted
from shared.directory.tables import DOOR_TO_DOOR_TAGS, DirectoryModels, define_directory

__all__ = [
    "DOOR_TO_DOOR_TAGS",
    "Directory",
    "DirectoryModels",
    "Lag",
    "SnapshotNotStarted",
    "define_directory",
]
