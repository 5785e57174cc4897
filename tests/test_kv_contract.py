"""One contract for both key-value stores: Redis (distributed mode) and the in-memory stand-in
of the embedded mode count hits in a window, reset, deliver signals and keep namespaces apart."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.kv import KeyValue, MemoryKeyValue, RedisKeyValue
from shared.ratelimit import DailyCap, RateLimit, RateLimited
from tests.conftest import REDIS_URL, skip_unless_reachable
from tests.support import eventually


@dataclass
class Stores:
    """Opens one store per namespace (the same namespace gives the same store)."""

    make: Callable[[str], KeyValue]
    # Whether two clients of one namespace share state (Redis) or only one process can
    # (memory: the embedded mode is one process, so a second client is the same store).
    shared: bool
    opened: dict[str, KeyValue] = field(default_factory=dict)
    others: list[KeyValue] = field(default_factory=list)
    listeners: list[asyncio.Task[None]] = field(default_factory=list)

    def __call__(self, namespace: str) -> KeyValue:
        if namespace not in self.opened:
            self.opened[namespace] = self.make(namespace)
        return self.opened[namespace]

    def another(self, namespace: str) -> KeyValue:
        """A second client of the same store, as another worker replica would hold."""
        if not self.shared:
            return self(namespace)
        self.others.append(self.make(namespace))
        return self.others[-1]

    def listen(self, kv: KeyValue, channel: str) -> list[int]:
        """Count the signals ``kv`` yields on ``channel``, in the background."""
        received = [0]

        async def count() -> None:
            async for _ in kv.signals(channel):
                received[0] += 1

        self.listeners.append(asyncio.create_task(count()))
        return received


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    prefix = f"kvtest_{uuid.uuid4().hex[:10]}_"
    if request.param == "redis":
        skip_unless_reachable("Redis")
        opened = Stores(
            lambda namespace: RedisKeyValue(REDIS_URL, namespace=prefix + namespace), shared=True
        )
    else:
        opened = Stores(lambda namespace: MemoryKeyValue(), shared=False)
    try:
        yield opened
    finally:
        for task in opened.listeners:
            task.cancel()
        await asyncio.gather(*opened.listeners, return_exceptions=True)
        for kv in opened.opened.values():
            for key in ("login:operator", "login:staff", "login:guard", "version:u1", "gone"):
                await kv.reset(key)
            await kv.close()
        for kv in opened.others:
            await kv.close()


async def test_hits_are_counted_per_key_within_the_window(stores: Stores) -> None:
    kv = stores("a:")
    assert [await kv.hit("login:operator", window_seconds=60) for _ in range(3)] == [1, 2, 3]
    assert await kv.hit("login:staff", window_seconds=60) == 1
    assert await kv.hit("login:operator", window_seconds=60) == 4


async def test_the_count_starts_again_when_the_window_ends(stores: Stores) -> None:
    kv = stores("a:")
    assert await kv.hit("login:guard", window_seconds=1) == 1
    assert await kv.hit("login:guard", window_seconds=1) == 2
    await asyncio.sleep(1.1)
    assert await kv.hit("login:guard", window_seconds=1) == 1


async def test_amounts_add_up_per_key_for_every_client_until_the_window_ends(
    stores: Stores,
) -> None:
    one, other = stores("a:"), stores.another("a:")
    await one.add_many([("gw:calls", 1), ("gw:ms", 250)], window_seconds=1)
    await other.add_many([("gw:calls", 1), ("gw:ms", 900), ("gw:errors", 1)], window_seconds=1)
    assert await one.numbers(["gw:calls", "gw:ms", "gw:errors"]) == [2, 1150, 1]
    await asyncio.sleep(1.1)
    assert await other.numbers(["gw:calls", "gw:ms", "gw:errors"]) == [0, 0, 0]


async def test_reset_forgets_the_hits_of_one_key(stores: Stores) -> None:
    kv = stores("a:")
    for _ in range(5):
        await kv.hit("login:operator", window_seconds=60)
    await kv.hit("login:staff", window_seconds=60)
    await kv.reset("login:operator")
    assert await kv.hit("login:operator", window_seconds=60) == 1
    assert await kv.hit("login:staff", window_seconds=60) == 2


async def test_numbers_reads_counters_without_counting_and_zero_for_missing_keys(
    stores: Stores,
) -> None:
    kv = stores("a:")
    await kv.hit("login:operator", window_seconds=60)
    await kv.hit("login:operator", window_seconds=60)
    assert await kv.numbers(["login:operator", "login:staff"]) == [2, 0]
    assert await kv.numbers(["login:operator"]) == [2]
    assert await kv.numbers([]) == []


async def test_reads_asked_together_each_get_their_own_keys_values(stores: Stores) -> None:
    """Every request reads its session marks at once (Redis answers them in one MGET)."""
    kv = stores("a:")
    for n in range(5):
        await kv.raise_to(f"version:u{n}", n, ttl_seconds=60)
    asked = [[f"version:u{n}", "ended:none"] for n in range(5)] + [[], ["version:u4"] * 3]
    answers = await asyncio.gather(*(kv.numbers(keys) for keys in asked))
    assert answers == [[n, 0] for n in range(5)] + [[], [4, 4, 4]]


async def test_raise_to_keeps_the_highest_value_it_was_given(stores: Stores) -> None:
    kv = stores("a:")
    assert await kv.raise_to("version:u1", 3, ttl_seconds=60) == 3
    # A late writer holding an older version cannot lower it.
    assert await kv.raise_to("version:u1", 2, ttl_seconds=60) == 3
    assert await kv.raise_to("version:u1", 5, ttl_seconds=60) == 5
    assert await kv.numbers(["version:u1"]) == [5]


async def test_a_raised_value_is_gone_after_its_time(stores: Stores) -> None:
    kv = stores("a:")
    await kv.raise_to("gone", 7, ttl_seconds=1)
    await asyncio.sleep(1.1)
    assert await kv.numbers(["gone"]) == [0]


async def test_an_unreachable_redis_raises_one_error_the_callers_can_answer() -> None:
    from shared.kv import KeyValueUnavailable

    kv = RedisKeyValue("redis://127.0.0.1:1/0")
    try:
        together = await asyncio.gather(
            kv.numbers(["a"]), kv.numbers(["b", "c"]), return_exceptions=True
        )
        assert [type(e) for e in together] == [KeyValueUnavailable, KeyValueUnavailable]
        for call in (
            kv.numbers(["a"]),
            kv.raise_to("a", 1, ttl_seconds=5),
            kv.hit("a", window_seconds=5),
            kv.reset("a"),
        ):
            with pytest.raises(KeyValueUnavailable):
                await call
    finally:
        await kv.close()


async def until_listening(kv: KeyValue, channel: str, received: list[int]) -> None:
    """Signal until the listener has one: subscribing takes effect after the first wait."""

    async def heard() -> bool:
        if received[0] == 0:
            await kv.signal(channel)
            await asyncio.sleep(0.05)
        return received[0] > 0

    await eventually(heard, within=5, what=f"a listener on {channel}")


async def test_a_signal_reaches_every_subscriber_of_its_channel_only(stores: Stores) -> None:
    kv = stores("a:")
    first = stores.listen(kv, "outbox:registry")
    second = stores.listen(kv, "outbox:registry")
    elsewhere = stores.listen(kv, "outbox:testing")
    for received, channel in [
        (first, "outbox:registry"),
        (second, "outbox:registry"),
        (elsewhere, "outbox:testing"),
    ]:
        await until_listening(kv, channel, received)
    await asyncio.sleep(0.2)
    before = [first[0], second[0], elsewhere[0]]

    await kv.signal("outbox:registry")

    async def both_heard() -> bool:
        return first[0] > before[0] and second[0] > before[1]

    await eventually(both_heard, within=5, what="both subscribers to hear the signal")
    await asyncio.sleep(0.2)
    assert elsewhere[0] == before[2]


async def test_namespaces_keep_counters_and_signals_apart(stores: Stores) -> None:
    town_a, town_b = stores("a:"), stores("b:")
    for _ in range(3):
        await town_a.hit("login:operator", window_seconds=60)
    assert await town_b.hit("login:operator", window_seconds=60) == 1
    await town_b.reset("login:operator")
    assert await town_a.hit("login:operator", window_seconds=60) == 4

    in_a = stores.listen(town_a, "outbox:registry")
    in_b = stores.listen(town_b, "outbox:registry")
    await until_listening(town_a, "outbox:registry", in_a)
    await until_listening(town_b, "outbox:registry", in_b)
    await asyncio.sleep(0.2)
    before = [in_a[0], in_b[0]]

    await town_a.signal("outbox:registry")

    async def a_heard() -> bool:
        return in_a[0] > before[0]

    await eventually(a_heard, within=5, what="the signal in namespace a")
    await asyncio.sleep(0.2)
    assert in_b[0] == before[1]


async def test_ping_answers_true_when_the_store_is_reachable(stores: Stores) -> None:
    assert await stores("a:").ping() is True


async def test_an_unreachable_redis_answers_ping_false_instead_of_raising() -> None:
    kv = RedisKeyValue("redis://127.0.0.1:1/0")
    try:
        assert await kv.ping() is False
    finally:
        await kv.close()


async def test_a_token_bucket_gives_its_burst_then_refills_at_its_rate(stores: Stores) -> None:
    limit = RateLimit(stores("a:"), name="sms", per_second=10, burst=5)
    assert [await limit.try_acquire() for _ in range(5)] == [0, 0, 0, 0, 0]
    wait = await limit.try_acquire()
    assert 0.05 < wait <= 0.1
    await asyncio.sleep(wait + 0.02)
    assert await limit.try_acquire() == 0
    assert await limit.try_acquire() > 0
    other = RateLimit(stores("a:"), name="voice", per_second=10, burst=5)
    assert await other.try_acquire() == 0
    with pytest.raises(RateLimited):
        await limit.acquire(3, within=0.1)


async def test_two_limiters_sharing_a_store_never_exceed_the_rate_together(
    stores: Stores,
) -> None:
    """Two worker replicas, each with its own connection, sending as fast as allowed."""
    first = RateLimit(stores("a:"), name="segments", per_second=40, burst=5)
    second = RateLimit(stores.another("a:"), name="segments", per_second=40, burst=5)
    taken: list[list[float]] = [[], []]
    started = time.monotonic()

    async def send(limit: RateLimit, log: list[float]) -> None:
        while time.monotonic() - started < 1.5:
            await limit.acquire()
            log.append(time.monotonic() - started)

    await asyncio.gather(send(first, taken[0]), send(second, taken[1]))

    everything = sorted(taken[0] + taken[1])
    allowed = 5 + 40 * everything[-1]
    assert len(everything) <= allowed + 1
    assert len(everything) >= 0.8 * allowed
    assert len(taken[0]) > 5 and len(taken[1]) > 5
    # Over any half second, never more than the burst and the rate allow.
    for i, at in enumerate(everything):
        within = [t for t in everything[i:] if t - at <= 0.5]
        assert len(within) <= 5 + 40 * 0.5 + 1


async def test_a_daily_cap_counts_per_key_and_turns_at_the_towns_midnight(
    stores: Stores,
) -> None:
    cap = DailyCap(stores("a:"), name="sms", limit=3, zone=ZoneInfo("Asia/Shanghai"))
    # 23:50 in Shanghai is 15:50 UTC; ten minutes later, a new day there (not in UTC).
    evening = datetime(2026, 12, 5, 15, 50, tzinfo=UTC)
    phone = "+8613800000001:zone-sealed"
    assert [await cap.allow(phone, now=evening) for _ in range(4)] == [True, True, True, False]
    assert await cap.allow("+8613800000002:zone-sealed", now=evening) is True
    assert await cap.allow("+8613800000001:round-reminder", now=evening) is True
    assert await cap.allow(phone, now=evening + timedelta(minutes=9)) is False
    assert await cap.allow(phone, now=evening + timedelta(minutes=11)) is True


async def test_a_daily_cap_answers_many_keys_at_once_counting_repeats(stores: Stores) -> None:
    cap = DailyCap(stores("a:"), name="bulk", limit=2, zone=ZoneInfo("Asia/Shanghai"))
    noon = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)
    first, second = "+8613800000001:round", "+8613800000002:round"

    assert await cap.allow_many([first, second, first, first], now=noon) == [
        True,
        True,
        True,
        False,
    ]
    assert await cap.allow(second, now=noon) is True
    assert await cap.allow_many([second], now=noon) == [False]


async def test_a_mark_only_rises_and_concurrent_writers_never_move_it_back(
    stores: Stores,
) -> None:
    kv = stores("marks")
    try:
        assert await kv.mark("stream:registry") is None
        await kv.advance("stream:registry", position=5, at=100.0)
        await kv.advance("stream:registry", position=3, at=200.0)
        assert await kv.mark("stream:registry") == (5, 100.0)
        await asyncio.gather(
            *(kv.advance("stream:registry", position=p, at=float(p)) for p in range(6, 60))
        )
        assert await kv.mark("stream:registry") == (59, 59.0)
        assert await stores("other").mark("stream:registry") is None
    finally:
        await kv.reset("stream:registry")


async def test_advancing_a_mark_can_wake_a_channel_in_the_same_call(stores: Stores) -> None:
    """A commit marks its stream's head and wakes its relay at once: the mark is there by
    the time the relay wakes, and a mark that does not rise still wakes it (another writer
    may have marked the same head first)."""
    kv = stores("wake:")
    relay = stores.listen(kv, "outbox:testing")
    try:
        await until_listening(kv, "outbox:testing", relay)
        await asyncio.sleep(0.2)

        async def advance_and_wake(position: int, at: float) -> None:
            before = relay[0]
            await kv.advance("stream:testing", position=position, at=at, wake="outbox:testing")

            async def woken() -> bool:
                return relay[0] > before

            await eventually(woken, within=5, what=f"the relay woken by advancing to {position}")

        await advance_and_wake(7, 70.0)
        assert await kv.mark("stream:testing") == (7, 70.0)
        await advance_and_wake(6, 80.0)
        assert await kv.mark("stream:testing") == (7, 70.0)
    finally:
        await kv.reset("stream:testing")
