"""Rate limits shared by every worker replica, over the key-value store (Redis in the
distributed mode, memory in the embedded one).

- :class:`RateLimit`: a token bucket (e.g. an SMS provider's segments per second). Every
  replica takes from the same bucket, atomically, so together they never exceed the rate.
- :class:`DailyCap`: at most ``limit`` per key per day of the town (e.g. 50 messages per
  phone per template a day); the day turns at the town's midnight, not UTC's.

Urgent work (a sealing, a positive result) passes caps by not asking them: callers decide.
"""

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from shared.kv import KeyValue


class RateLimited(Exception):
    def __init__(self, *, retry_after: float) -> None:
        super().__init__(f"rate limited, retry in {retry_after:.2f}s")
        self.retry_after = retry_after


class RateLimit:
    def __init__(self, kv: KeyValue, *, name: str, per_second: float, burst: float) -> None:
        if per_second <= 0 or burst < 1:
            raise ValueError("a rate limit needs per_second > 0 and burst >= 1")
        self._kv = kv
        self._key = f"rate:{name}"
        self.per_second = per_second
        self.burst = burst

    async def try_acquire(self, cost: float = 1) -> float:
        """Take ``cost`` tokens and return 0, or take none and return the seconds to wait."""
        if cost > self.burst:
            raise ValueError(f"a cost of {cost} never fits a burst of {self.burst}")
        return await self._kv.take(self._key, rate=self.per_second, burst=self.burst, cost=cost)

    async def acquire(self, cost: float = 1, *, within: float | None = None) -> None:
        """Wait for ``cost`` tokens; raise :class:`RateLimited` if they would come later
        than ``within`` seconds from now."""
        deadline = None if within is None else time.monotonic() + within
        while (wait := await self.try_acquire(cost)) > 0:
            if deadline is not None and time.monotonic() + wait > deadline:
                raise RateLimited(retry_after=wait)
            await asyncio.sleep(wait)


class DailyCap:
    def __init__(self, kv: KeyValue, *, name: str, limit: int, zone: ZoneInfo) -> None:
        self._kv = kv
        self._name = name
        self.limit = limit
        self.zone = zone

    async def allow(self, key: str, *, now: datetime) -> bool:
        """Count one for ``key`` today (the town's day of ``now``); False once over the cap.
        A refused attempt counts too, which changes nothing: the day's answer stays no."""
        return (await self.allow_many([key], now=now))[0]

    async def allow_many(self, keys: Sequence[str], *, now: datetime) -> list[bool]:
        """:meth:`allow` for each key in order (a key may repeat), in one round trip."""
        local = now.astimezone(self.zone)
        midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time())
        left = midnight.replace(tzinfo=self.zone) - local
        # The counter outlives its day by an hour: a clock a little behind still finds it.
        window = int(left.total_seconds()) + 3600
        day = local.date()
        counts = await self._kv.hit_many(
            [f"cap:{self._name}:{key}:{day}" for key in keys], window_seconds=window
        )
        return [count <= self.limit for count in counts]
