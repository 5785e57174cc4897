"""Failover between a primary gateway and a fallback, driven by the primary's health.

Each call's outcome and latency is recorded per gateway over a sliding window. When the
gateway in use has an error rate or a mean latency above its threshold (with enough calls to
judge), traffic moves to the other one; after ``failback_seconds`` the primary is tried again
(its window starts afresh). Every switch is reported with its reason to ``on_switch``, which
records it (table, event, log). Health is each worker replica's own view: a replica that
sees the primary fail moves away without waiting for the others."""

import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from services.notify.gateways import Gateway


@dataclass(frozen=True)
class Health:
    calls: int
    error_rate: float
    latency_ms: float


@dataclass(frozen=True)
class Switch:
    from_gateway: str
    to_gateway: str
    reason: str
    health: Health


class HealthWindow:
    def __init__(self, *, seconds: float) -> None:
        self._seconds = seconds
        # (monotonic time, failed, latency in seconds)
        self._calls: deque[tuple[float, bool, float]] = deque()

    def record(self, *, failed: bool, latency: float, at: float) -> None:
        self._calls.append((at, failed, latency))
        self._trim(at)

    def clear(self) -> None:
        self._calls.clear()

    def health(self, *, at: float) -> Health:
        self._trim(at)
        calls = len(self._calls)
        if not calls:
            return Health(calls=0, error_rate=0.0, latency_ms=0.0)
        failed = sum(1 for _, f, _ in self._calls if f)
        latency = sum(s for _, _, s in self._calls) / calls
        return Health(calls=calls, error_rate=failed / calls, latency_ms=latency * 1000)

    def _trim(self, at: float) -> None:
        while self._calls and self._calls[0][0] < at - self._seconds:
            self._calls.popleft()


class Gateways:
    """The gateways by name and which one new batches go to."""

    def __init__(
        self,
        *,
        primary: Gateway,
        fallback: Gateway | None = None,
        window_seconds: float = 30.0,
        error_rate: float = 0.5,
        latency_ms: float = 5000.0,
        min_calls: int = 4,
        failback_seconds: float = 120.0,
        on_switch: Callable[[Switch], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self._by_name = {g.name: g for g in (primary, fallback) if g is not None}
        self._windows = {name: HealthWindow(seconds=window_seconds) for name in self._by_name}
        self._error_rate = error_rate
        self._latency_ms = latency_ms
        self._min_calls = min_calls
        self._failback_seconds = failback_seconds
        self._on_switch = on_switch
        self._clock = clock
        self.active = primary.name
        self._since = clock()
        self.switches: list[Switch] = []

    def on_switch(self, report: Callable[[Switch], Awaitable[None]]) -> None:
        self._on_switch = report

    def get(self, name: str) -> Gateway:
        """The gateway of that name (a batch goes back to the one that received it)."""
        return self._by_name.get(name, self.primary)

    def health(self, name: str) -> Health:
        return self._windows[name].health(at=self._clock())

    async def choose(self) -> Gateway:
        """The gateway for the next batch; fails back to the primary after a while."""
        fallback = self.fallback
        on_fallback = fallback is not None and self.active == fallback.name
        if on_fallback and self._clock() - self._since >= self._failback_seconds:
            self._windows[self.primary.name].clear()
            await self._switch(
                self.primary.name,
                f"trying {self.primary.name} again after {self._failback_seconds:.0f}s",
            )
        return self._by_name[self.active]

    async def record(self, name: str, *, failed: bool, latency: float) -> None:
        """One call's outcome; may move traffic to the other gateway."""
        now = self._clock()
        self._windows[name].record(failed=failed, latency=latency, at=now)
        if self.fallback is None or name != self.active:
            return
        reason = self._unhealthy(name)
        if reason is not None:
            other = self.fallback.name if name == self.primary.name else self.primary.name
            self._windows[other].clear()
            await self._switch(other, reason)

    def _unhealthy(self, name: str) -> str | None:
        health = self.health(name)
        if health.calls < self._min_calls:
            return None
        if health.error_rate >= self._error_rate:
            return (
                f"{name} failed {health.error_rate:.0%} of {health.calls} calls "
                f"(threshold {self._error_rate:.0%})"
            )
        if health.latency_ms >= self._latency_ms:
            return (
                f"{name} answered in {health.latency_ms:.0f} ms on average over "
                f"{health.calls} calls (threshold {self._latency_ms:.0f} ms)"
            )
        return None

    async def _switch(self, to: str, reason: str) -> None:
        switch = Switch(
            from_gateway=self.active, to_gateway=to, reason=reason, health=self.health(self.active)
        )
        self.active = to
        self._since = self._clock()
        self.switches.append(switch)
        if self._on_switch is not None:
            await self._on_switch(switch)

    async def close(self) -> None:
        for gateway in self._by_name.values():
            await gateway.close()
