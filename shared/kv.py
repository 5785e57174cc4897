"""What Redis does for Cordon, behind one small port: counters with a time window (sign-in
throttling, daily caps), token buckets (rate limits shared by every worker replica), numbers
that only rise (the token versions and ended sessions every service checks per request),
marks that only rise (the head of each service's event stream, which projections compare
with what they applied) and wake-up signals across processes (a commit tells the relay to
publish now). The embedded mode uses the in-memory stand-in; both pass the same contract
tests."""

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator, Sequence

import redis.asyncio as aioredis

log = logging.getLogger(__name__)

# How long a lost Redis subscription waits before subscribing again.
RESUBSCRIBE_SECONDS = 1.0
# A request waits at most this long for Redis: a hung store must not hang every request.
REDIS_TIMEOUT_SECONDS = 2.0


class KeyValueUnavailable(RuntimeError):
    """The store did not answer; callers that guard access refuse rather than guess."""


class KeyValue(ABC):
    @abstractmethod
    async def hit(self, key: str, *, window_seconds: int) -> int:
        """Count one hit on ``key`` and return the hits within the current window."""

    async def hit_many(self, keys: Sequence[str], *, window_seconds: int) -> list[int]:
        """:meth:`hit` for each key (one round trip where the store allows)."""
        return [await self.hit(key, window_seconds=window_seconds) for key in keys]

    @abstractmethod
    async def add_many(self, amounts: Sequence[tuple[str, int]], *, window_seconds: int) -> None:
        """Add each amount to its counter (a window starting with its first addition, as
        :meth:`hit`), in one round trip: sums over time shared by every replica (a
        gateway's calls, errors and milliseconds)."""

    @abstractmethod
    async def take(self, key: str, *, rate: float, burst: float, cost: float = 1) -> float:
        """Token bucket ``key`` (refilled at ``rate`` tokens a second, holding at most
        ``burst``; full when new): take ``cost`` tokens and return 0, or take nothing and
        return the seconds until they would be there. Atomic across every client."""

    @abstractmethod
    async def reset(self, key: str) -> None: ...

    @abstractmethod
    async def numbers(self, keys: Sequence[str]) -> list[int]:
        """The current value of each key (counters included), 0 for a missing one; one round
        trip however many keys."""

    @abstractmethod
    async def raise_to(self, key: str, value: int, *, ttl_seconds: int) -> int:
        """Make ``key`` hold at least ``value`` (never lower it: a late writer with an older
        value changes nothing) for ``ttl_seconds`` from now; return what it holds."""

    @abstractmethod
    async def signal(self, channel: str) -> None:
        """Wake whoever waits on ``channel`` (no payload, may coalesce)."""

    @abstractmethod
    def signals(self, channel: str) -> AsyncIterator[None]:
        """Yield once per signal received on ``channel`` after subscribing."""

    @abstractmethod
    async def advance(self, key: str, *, position: int, at: float, wake: str | None = None) -> None:
        """Raise the mark under ``key`` to ``position`` (reached at ``at``, epoch seconds),
        unless it is that high already: concurrent writers never move it back. ``wake``:
        then signal that channel, in the same round trip (a commit marks its stream's head
        and wakes its relay with one)."""

    @abstractmethod
    async def mark(self, key: str) -> tuple[int, float] | None:
        """The mark under ``key`` as (position, at), or None when nothing was marked."""

    @abstractmethod
    async def ping(self) -> bool: ...

    async def close(self) -> None:
        return None


class MemoryKeyValue(KeyValue):
    def __init__(self) -> None:
        # key -> (value, monotonic time it expires at), as Redis keeps a value and its TTL.
        self._values: dict[str, tuple[int, float]] = {}
        self._buckets: dict[str, tuple[float, float]] = {}
        self._listeners: dict[str, set[asyncio.Queue[None]]] = defaultdict(set)
        self._marks: dict[str, tuple[int, float]] = {}

    def _current(self, key: str) -> tuple[int, float] | None:
        held = self._values.get(key)
        if held is not None and held[1] <= time.monotonic():
            del self._values[key]
            return None
        return held

    async def hit(self, key: str, *, window_seconds: int) -> int:
        value, expires = self._current(key) or (0, time.monotonic() + window_seconds)
        self._values[key] = (value + 1, expires)
        return value + 1

    async def add_many(self, amounts: Sequence[tuple[str, int]], *, window_seconds: int) -> None:
        for key, amount in amounts:
            value, expires = self._current(key) or (0, time.monotonic() + window_seconds)
            self._values[key] = (value + amount, expires)

    async def take(self, key: str, *, rate: float, burst: float, cost: float = 1) -> float:
        now = time.monotonic()
        tokens, at = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - at) * rate)
        wait = 0.0 if tokens >= cost else (cost - tokens) / rate
        self._buckets[key] = (tokens - cost if wait == 0 else tokens, now)
        return wait

    async def reset(self, key: str) -> None:
        self._values.pop(key, None)
        self._buckets.pop(key, None)

    async def numbers(self, keys: Sequence[str]) -> list[int]:
        return [held[0] if (held := self._current(key)) else 0 for key in keys]

    async def raise_to(self, key: str, value: int, *, ttl_seconds: int) -> int:
        held = self._current(key)
        highest = max(value, held[0] if held else 0)
        self._values[key] = (highest, time.monotonic() + ttl_seconds)
        return highest

    async def signal(self, channel: str) -> None:
        for queue in self._listeners[channel]:
            if queue.empty():
                queue.put_nowait(None)

    async def signals(self, channel: str) -> AsyncIterator[None]:
        queue: asyncio.Queue[None] = asyncio.Queue(maxsize=1)
        self._listeners[channel].add(queue)
        try:
            while True:
                await queue.get()
                yield None
        finally:
            self._listeners[channel].discard(queue)

    async def advance(self, key: str, *, position: int, at: float, wake: str | None = None) -> None:
        current = self._marks.get(key)
        if current is None or current[0] < position:
            self._marks[key] = (position, at)
        if wake is not None:
            await self.signal(wake)

    async def mark(self, key: str) -> tuple[int, float] | None:
        return self._marks.get(key)

    async def ping(self) -> bool:
        return True


# The token bucket in one script, so that replicas sharing the bucket never both take the
# last token; the clock is Redis's own, so replicas' clocks don't matter. The wait travels
# as a string: Redis would truncate a Lua number to an integer.
TAKE_SCRIPT = """
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil then tokens, at = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= cost then tokens = tokens - cost else wait = (cost - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""

# Compare and raise in one step on the server, so two committers never move a mark back.
_ADVANCE = """
local current = redis.call('HGET', KEYS[1], 'position')
if (not current) or tonumber(current) < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'position', ARGV[1], 'at', ARGV[2])
end
if ARGV[3] ~= '' then
  redis.call('PUBLISH', ARGV[3], '1')
end
"""


# Keeps the higher of the stored and the given value, and sets the key's time to live.
RAISE_TO = """
local value = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), tonumber(ARGV[1]))
redis.call('SET', KEYS[1], value, 'EX', ARGV[2])
return value
"""


@contextlib.contextmanager
def _answering() -> Iterator[None]:
    try:
        yield
    except (aioredis.RedisError, OSError) as exc:
        raise KeyValueUnavailable(f"Redis did not answer: {exc}") from exc


class RedisKeyValue(KeyValue):
    """Keys and channels live under ``namespace``, so deployments sharing a Redis don't mix."""

    def __init__(self, url: str, *, namespace: str = "") -> None:
        # Subscriptions wait for messages as long as it takes; requests don't.
        self._redis = aioredis.from_url(url)
        self._requests = aioredis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )
        self._raise_to = self._requests.register_script(RAISE_TO)
        self._ns = namespace
        self._advance = self._redis.register_script(_ADVANCE)
        self._take = self._redis.register_script(TAKE_SCRIPT)
        # Reads asked for in this turn of the event loop, and the MGETs under way.
        self._reads: list[tuple[list[str], asyncio.Future[list[int]]]] = []
        self._reading: set[asyncio.Future[None]] = set()

    async def hit(self, key: str, *, window_seconds: int) -> int:
        with _answering():
            async with self._requests.pipeline(transaction=True) as pipe:
                pipe.incr(self._ns + key)
                pipe.expire(self._ns + key, window_seconds, nx=True)
                count, _ = await pipe.execute()
        return int(count)

    async def hit_many(self, keys: Sequence[str], *, window_seconds: int) -> list[int]:
        with _answering():
            async with self._requests.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.incr(self._ns + key)
                    pipe.expire(self._ns + key, window_seconds, nx=True)
                answers = await pipe.execute()
        return [int(count) for count in answers[::2]]

    async def add_many(self, amounts: Sequence[tuple[str, int]], *, window_seconds: int) -> None:
        with _answering():
            async with self._requests.pipeline(transaction=False) as pipe:
                for key, amount in amounts:
                    pipe.incrby(self._ns + key, amount)
                    pipe.expire(self._ns + key, window_seconds, nx=True)
                await pipe.execute()

    async def take(self, key: str, *, rate: float, burst: float, cost: float = 1) -> float:
        wait = await self._take(keys=[self._ns + key], args=[rate, burst, cost])
        return float(wait)

    async def reset(self, key: str) -> None:
        with _answering():
            await self._requests.delete(self._ns + key)

    async def numbers(self, keys: Sequence[str]) -> list[int]:
        """Callers reading in the same turn of the event loop (the session check of every
        request arriving together) share one MGET, sent after each of them asked."""
        if not keys:
            return []
        answer = asyncio.get_running_loop().create_future()
        if not self._reads:
            asyncio.get_running_loop().call_soon(self._read_together)
        self._reads.append(([self._ns + key for key in keys], answer))
        values: list[int] = await answer
        return values

    def _read_together(self) -> None:
        reads, self._reads = self._reads, []
        task = asyncio.ensure_future(self._mget(reads))
        self._reading.add(task)
        task.add_done_callback(self._reading.discard)

    async def _mget(self, reads: list[tuple[list[str], "asyncio.Future[list[int]]"]]) -> None:
        try:
            with _answering():
                values = await self._requests.mget([key for keys, _ in reads for key in keys])
        except KeyValueUnavailable as exc:
            for _, answer in reads:
                if not answer.done():
                    # Each caller raises its own error (a shared one would gather tracebacks).
                    answer.set_exception(KeyValueUnavailable(str(exc)))
            return
        except Exception as exc:
            for _, answer in reads:
                if not answer.done():
                    answer.set_exception(exc)
            return
        except BaseException:
            for _, answer in reads:
                answer.cancel()
            raise
        numbers = [int(value) if value is not None else 0 for value in values]
        start = 0
        for keys, answer in reads:
            if not answer.done():
                answer.set_result(numbers[start : start + len(keys)])
            start += len(keys)

    async def raise_to(self, key: str, value: int, *, ttl_seconds: int) -> int:
        with _answering():
            held = await self._raise_to(keys=[self._ns + key], args=[value, ttl_seconds])
        return int(held)

    async def signal(self, channel: str) -> None:
        await self._requests.publish(self._ns + channel, b"1")

    async def signals(self, channel: str) -> AsyncIterator[None]:
        name = self._ns + channel
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(name)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        yield None
            except (aioredis.RedisError, OSError) as exc:
                log.warning("lost the subscription to %s, subscribing again: %s", name, exc)
            finally:
                with contextlib.suppress(aioredis.RedisError, OSError):
                    await pubsub.unsubscribe(name)
                await pubsub.aclose()
            await asyncio.sleep(RESUBSCRIBE_SECONDS)
            # Signals sent while away are lost: wake the listener once in their place.
            yield None

    async def advance(self, key: str, *, position: int, at: float, wake: str | None = None) -> None:
        channel = "" if wake is None else self._ns + wake
        await self._advance(keys=[self._ns + key], args=[position, repr(at), channel])

    async def mark(self, key: str) -> tuple[int, float] | None:
        position, at = await self._redis.hmget(self._ns + key, ["position", "at"])
        if position is None or at is None:
            return None
        return int(position), float(at)

    async def ping(self) -> bool:
        try:
            return bool(await self._requests.ping())
        except (aioredis.RedisError, OSError):
            return False

    async def close(self) -> None:
        await self._requests.aclose()
        await self._redis.aclose()
