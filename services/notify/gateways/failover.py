"""Failover between a primary gateway and a fallback, driven by the primary's health.

Each call's outcome and latency is added to the gateway's health window. When the gateway
in use has an error rate or a mean latency above its threshold (with enough calls to judge),
traffic moves to the other one; after ``failback_seconds`` the primary is tried again (its
window starts afresh). Every switch is reported once, with its reason, to ``on_switch``,
which records it (table, event, log).

The window and the switch live in the kernel's key-value store (Redis in the distributed
mode, memory embedded), so every dispatcher replica judges on the calls of all of them and
switches together: the switches are numbered (even: the primary, odd: the fallback), and
the replica that takes the next number first makes and reports the switch; the others
follow it at their next claim. A switch's number is part of the window's keys, which is how
a switch starts the windows afresh."""

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from services.notify.gateways import Gateway
from shared.kv import KeyValue

# How long the switch number and its time are kept without a switch (then: the primary).
SWITCH_MEMORY_SECONDS = 7 * 24 * 3600
# A switch's election key outlives any race for it, and expires before the number does.
ELECTION_SECONDS = 24 * 3600
# A window is read in this many buckets (it slides by one bucket at a time).
BUCKETS = 6


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
    """A gateway's calls, errors and milliseconds over the last ``seconds``, in the
    key-value store under ``prefix``, in time buckets, per switch number."""

    def __init__(self, kv: KeyValue, *, prefix: str, seconds: float) -> None:
        self._kv = kv
        self._prefix = prefix
        self._bucket = max(1.0, seconds / BUCKETS)
        self._buckets = math.ceil(seconds / self._bucket)
        self._ttl = math.ceil(seconds + 2 * self._bucket)

    def _keys(self, generation: int, bucket: int) -> list[str]:
        return [
            f"{self._prefix}:{generation}:{bucket}:{part}" for part in ("calls", "errors", "ms")
        ]

    async def record(self, *, generation: int, failed: bool, latency: float, at: float) -> None:
        calls, errors, ms = self._keys(generation, int(at // self._bucket))
        amounts = [(calls, 1), (errors, int(failed)), (ms, round(latency * 1000))]
        await self._kv.add_many(amounts, window_seconds=self._ttl)

    async def health(self, *, generation: int, at: float) -> Health:
        last = int(at // self._bucket)
        keys = [
            key
            for bucket in range(last - self._buckets + 1, last + 1)
            for key in self._keys(generation, bucket)
        ]
        values = await self._kv.numbers(keys)
        calls, errors, ms = sum(values[0::3]), sum(values[1::3]), sum(values[2::3])
        if not calls:
            return Health(calls=0, error_rate=0.0, latency_ms=0.0)
        return Health(calls=calls, error_rate=errors / calls, latency_ms=ms / calls)


class Gateways:
    """The gateways by name and which one new batches go to, as every replica sees it."""

    def __init__(
        self,
        *,
        kv: KeyValue,
        primary: Gateway,
        fallback: Gateway | None = None,
        window_seconds: float = 30.0,
        error_rate: float = 0.5,
        latency_ms: float = 5000.0,
        min_calls: int = 4,
        failback_seconds: float = 120.0,
        on_switch: Callable[[Switch], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
        prefix: str = "notify:gateways",
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self._kv = kv
        self._prefix = prefix
        self._by_name = {g.name: g for g in (primary, fallback) if g is not None}
        self._windows = {
            name: HealthWindow(kv, prefix=f"{prefix}:health:{name}", seconds=window_seconds)
            for name in self._by_name
        }
        self._error_rate = error_rate
        self._latency_ms = latency_ms
        self._min_calls = min_calls
        self._failback_seconds = failback_seconds
        self._on_switch = on_switch
        # A wall clock: replicas on other machines compare the switch's time with theirs.
        self._clock = clock
        # This replica's latest view of the shared switch number (even: the primary).
        self._generation = 0
        self.active = primary.name
        # The switches this replica made and reported.
        self.switches: list[Switch] = []

    def on_switch(self, report: Callable[[Switch], Awaitable[None]]) -> None:
        self._on_switch = report

    def get(self, name: str) -> Gateway:
        """The gateway of that name (a batch goes back to the one that received it)."""
        return self._by_name.get(name, self.primary)

    async def health(self, name: str) -> Health:
        """The gateway's health since the last switch, over every replica's calls."""
        return await self._windows[name].health(generation=self._generation, at=self._clock())

    def _name_of(self, generation: int) -> str:
        if self.fallback is None or generation % 2 == 0:
            return self.primary.name
        return self.fallback.name

    async def _view(self) -> float:
        """Read the shared switch number (and the time of that switch)."""
        generation, since_ms = await self._kv.numbers(
            [f"{self._prefix}:switch", f"{self._prefix}:switch_at_ms"]
        )
        self._generation = generation
        self.active = self._name_of(generation)
        return since_ms / 1000

    async def choose(self) -> Gateway:
        """The gateway for the next batch; fails back to the primary after a while."""
        if self.fallback is None:
            return self.primary
        since = await self._view()
        judged = self._generation
        on_fallback = self.active == self.fallback.name
        if on_fallback and self._clock() - since >= self._failback_seconds:
            await self._switch(
                f"trying {self.primary.name} again after {self._failback_seconds:.0f}s",
                health=await self.health(self.active),
                judged=judged,
            )
        return self._by_name[self.active]

    async def record(self, name: str, *, failed: bool, latency: float) -> None:
        """One call's outcome, for every replica to judge by; may move traffic to the
        other gateway."""
        if self.fallback is None:
            return
        now = self._clock()
        # The switch number this call is judged under: another call of this replica may
        # switch while this one awaits the store.
        judged = self._generation
        window = self._windows[name]
        await window.record(generation=judged, failed=failed, latency=latency, at=now)
        if name != self._name_of(judged):
            return
        health = await window.health(generation=judged, at=now)
        reason = self._unhealthy(name, health)
        if reason is not None:
            await self._switch(reason, health=health, judged=judged)

    def _unhealthy(self, name: str, health: Health) -> str | None:
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

    async def _switch(self, reason: str, *, health: Health, judged: int) -> None:
        """Take the switch number after ``judged``, the one the judgement was made under: the
        first call (of any replica) to ask makes the switch and reports it; one that was
        late follows it. A judgement made before a switch never makes the next one: it
        would switch back for the reason that switched away."""
        following = judged + 1
        election = f"{self._prefix}:switch:{following}:taken"
        if await self._kv.hit(election, window_seconds=ELECTION_SECONDS) == 1:
            switch = Switch(
                from_gateway=self._name_of(judged),
                to_gateway=self._name_of(following),
                reason=reason,
                health=health,
            )
            # The time first: whoever sees the new number sees when it was taken.
            at_ms = round(self._clock() * 1000)
            await self._kv.raise_to(
                f"{self._prefix}:switch_at_ms", at_ms, ttl_seconds=SWITCH_MEMORY_SECONDS
            )
            await self._kv.raise_to(
                f"{self._prefix}:switch", following, ttl_seconds=SWITCH_MEMORY_SECONDS
            )
            self.switches.append(switch)
            if self._on_switch is not None:
                await self._on_switch(switch)
        await self._view()

    async def close(self) -> None:
        for gateway in self._by_name.values():
            await gateway.close()
