"""The notify service's tables. Its directory of places, households, residents, zones and
people is the shared projection of registry events (``shared/directory``, never the
registry's tables); every placed row carries town, committee, compound and building ids
(:class:`~shared.auth.Scoped`) so that scope filtering needs no joins."""

import uuid
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import Uuid

from shared.db import define_kernel_tables, new_metadata, utc_datetime
from shared.directory import Directory, define_directory


class Base(DeclarativeBase):
    metadata = new_metadata()
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: utc_datetime(), uuid.UUID: Uuid}


SERVICE = "notify"
kernel = define_kernel_tables(Base.metadata)
# The registry's places, households, residents, zones and people as this service knows them.
directory = Directory(define_directory(Base))
