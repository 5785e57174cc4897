"""Identifiers: time-ordered UUIDs (version 7) keep PostgreSQL's indexes compact."""

import os
import time
import uuid

_MILLIS = (1 << 48) - 1
_VERSION_AND_VARIANT = (0x7 << 76) | (0b10 << 62)
_LOW = (1 << 62) - 1


def new_id() -> uuid.UUID:
    return _uuid7(_stamp(), int.from_bytes(os.urandom(10), "big"))


def new_ids(count: int) -> list[uuid.UUID]:
    """``count`` identifiers from one draw of randomness, for bulk work."""
    stamp = _stamp()
    randomness = os.urandom(10 * count)
    return [
        _uuid7(stamp, int.from_bytes(randomness[i : i + 10], "big"))
        for i in range(0, 10 * count, 10)
    ]


def _stamp() -> int:
    return ((time.time_ns() // 1_000_000) & _MILLIS) << 80 | _VERSION_AND_VARIANT


def _uuid7(stamp: int, rand: int) -> uuid.UUID:
    """48 bits of milliseconds, version 7, 12 random bits, variant 0b10, 62 random bits."""
    return uuid.UUID(int=stamp | (rand >> 68) << 64 | (rand & _LOW))
