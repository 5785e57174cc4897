"""What Redis does for Cordon, behind one small port: counters with a time window (login
throttling) and wake-up signals across processes (a commit tells the relay to publish now).
The embedded mode uses the in-memory stand-in; both pass the same contract tests."""

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import AsyncIterator

import redis.asyncio as aioredis

log = logging.getLogger(__name__)

# How long a lost Redis subscription waits before subscribing again.
RESUBSCRIBE_SECONDS = 1.0


class KeyValue(ABC):
    @abstractmethod
    async def hit(self, key: str, *, window_seconds: int) -> int:
        """Count one hit on ``key`` and return the hits within the current window."""

    @abstractmethod
    async def reset(self, key: str) -> None: ...

    @abstractmethod
    async def signal(self, channel: str) -> None:
        """Wake whoever waits on ``channel`` (no payload, may coalesce)."""

    @abstractmethod
    def signals(self, channel: str) -> AsyncIterator[None]:
        """Yield once per signal received on ``channel`` after subscribing."""

    @abstractmethod
    async def ping(self) -> bool: ...

    async def close(self) -> None:
        return None


class MemoryKeyValue(KeyValue):
    def __init__(self) -> None:
        self._counters: dict[str, tuple[float, int]] = {}
        self._listeners: dict[str, set[asyncio.Queue[None]]] = defaultdict(set)

    async def hit(self, key: str, *, window_seconds: int) -> int:
        now = time.monotonic()
        started, count = self._counters.get(key, (now, 0))
        if now - started >= window_seconds:
            started, count = now, 0
        self._counters[key] = (started, count + 1)
        return count + 1

    async def reset(self, key: str) -> None:
        self._counters.pop(key, None)

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

    async def ping(self) -> bool:
        return True


class RedisKeyValue(KeyValue):
    """Keys and channels live under ``namespace``, so deployments sharing a Redis don't mix."""

    def __init__(self, url: str, *, namespace: str = "") -> None:
        self._redis = aioredis.from_url(url)
        self._ns = namespace

    async def hit(self, key: str, *, window_seconds: int) -> int:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(self._ns + key)
            pipe.expire(self._ns + key, window_seconds, nx=True)
            count, _ = await pipe.execute()
        return int(count)

    async def reset(self, key: str) -> None:
        await self._redis.delete(self._ns + key)

    async def signal(self, channel: str) -> None:
        await self._redis.publish(self._ns + channel, b"1")

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

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (aioredis.RedisError, OSError):
            return False

    async def close(self) -> None:
        await self._redis.aclose()
