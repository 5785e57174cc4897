"""Identifiers: time-ordered UUIDs (version 7) keep PostgreSQL's indexes compact, and keep
their order within a process even inside one millisecond, so "in order of creation" lists
(units of a building, households of a unit) come out as they were made."""

import os
import threading
import time
import uuid

_MILLIS = (1 << 48) - 1
_VERSION_AND_VARIANT = (0x7 << 76) | (0b10 << 62)
_LOW = (1 << 62) - 1
_lock = threading.Lock()
_last = 0


def new_id() -> uuid.UUID:
    return new_ids(1)[0]


def new_ids(count: int) -> list[uuid.UUID]:
    """``count`` identifiers in order, from one draw of randomness (bulk work)."""
    global _last
    stamp = ((time.time_ns() // 1_000_000) & _MILLIS) << 80 | _VERSION_AND_VARIANT
    randomness = os.urandom(10 * count)
    drawn = sorted(
        _uuid7(stamp, int.from_bytes(randomness[i : i + 10], "big"))
        for i in range(0, 10 * count, 10)
    )
    made = []
    with _lock:
        for value in drawn:
            # Within one millisecond, count on from the last id (the random bits absorb it).
            _last = value if value > _last else _last + 1
            made.append(uuid.UUID(int=_last))
    return made


def _uuid7(stamp: int, rand: int) -> int:
    """48 bits of milliseconds, version 7, 12 random bits, variant 0b10, 62 random bits."""
    return stamp | (rand >> 68) << 64 | (rand & _LOW)
