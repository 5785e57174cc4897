"""Identifiers: time-ordered UUIDs (version 7) keep PostgreSQL's indexes compact, and keep
their order within a process even inside one millisecond, so "in order of creation" lists
(units of a building, households of a unit) come out as they were made."""

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last = 0


def new_id() -> uuid.UUID:
    global _last
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    with _lock:
        if value <= _last:
            # The same millisecond: count on from the last id (the random bits absorb it).
            value = _last + 1
        _last = value
    return uuid.UUID(int=value)
