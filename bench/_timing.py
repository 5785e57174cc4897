"""Timing of repeated calls: median and tail percentiles, in milliseconds."""

import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Timings:
    seconds: list[float]

    def percentile(self, p: float) -> float:
        """The p-th percentile in ms (nearest rank)."""
        ordered = sorted(self.seconds)
        rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
        return ordered[rank] * 1000

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) * 1000

    def summary(self) -> str:
        return (
            f"median {self.median:7.1f} ms  p95 {self.percentile(95):7.1f} ms  "
            f"p99 {self.percentile(99):7.1f} ms  (n={len(self.seconds)})"
        )


async def repeat(call: Callable[[], Awaitable[object]], *, times: int, warmup: int = 2) -> Timings:
    for _ in range(warmup):
        await call()
    seconds = []
    for _ in range(times):
        started = time.perf_counter()
        await call()
        seconds.append(time.perf_counter() - started)
    return Timings(seconds)
