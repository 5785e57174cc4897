"""Notify's delivery on both backends: messages created once per key, cancelled and counted
for a broadcast; the dispatcher's lanes, quiet hours, limits, retries, failover and
receipts against a fake SMS gateway on loopback."""

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select

from bench.fake_sms import FakeSms
from cordon.platform import Platform
from services.notify.delivery.receipts import sign
from services.notify.delivery.service import Dispatcher
from services.notify.delivery.worker import dispatcher_for
from services.notify.gateways.failover import Gateways, Switch
from services.notify.messages.service import (
    NewMessage,
    broadcasts_progress,
    cancel_broadcast,
    enqueue,
)
from services.notify.models import CauseKind, GatewaySwitch, Message, Priority, RecipientKind
from services.notify.settings import NotifySettings, get_notify_settings
from shared.auth import Principal
from shared.settings import Settings, get_settings
from tests.conftest import Town
from tests.support import eventually

CORDON = str(Path(sys.executable).parent / "cordon")

TOWN = uuid.UUID("00000000-0000-7000-8000-00000000e001")


def new_messages(
    count: int,
    *,
    broadcast_id: uuid.UUID | None = None,
    priority: Priority = Priority.bulk,
    text: str = "明早7点全员核酸，请带好身份证。",
    send_at: datetime | None = None,
    valid_until: datetime | None = None,
    first_phone: int = 0,
) -> list[NewMessage]:
    cause = broadcast_id or uuid.uuid4()
    return [
        NewMessage(
            cause_kind=CauseKind.broadcast if broadcast_id else CauseKind.event,
            cause_id=cause,
            broadcast_id=broadcast_id,
            recipient_kind=RecipientKind.resident,
            recipient_id=uuid.UUID(int=(first_phone + i) | (7 << 76) | (2 << 62)),
            phone=f"+86138{first_phone + i:08d}",
            language="zh-CN",
            template_key="round.scheduled",
            template_version=1,
            text=text,
            segments=1,
            priority=priority,
            town_id=TOWN,
            send_at=send_at,
            valid_until=valid_until,
        )
        for i in range(count)
    ]


async def queue(platform: Platform, messages: list[NewMessage]) -> int:
    async with platform.runtime("notify").uow(Principal.system()) as uow:
        new = await enqueue(uow, messages=messages)
        await uow.commit()
    return new


async def test_enqueue_creates_one_message_per_key_however_often_it_is_asked(
    platform: Platform,
) -> None:
    broadcast = uuid.uuid4()
    messages = new_messages(7_500, broadcast_id=broadcast)

    assert await queue(platform, messages) == 7_500
    # A retried request, a redelivered event, a second replica: nothing new.
    assert await queue(platform, messages[:100] + messages[:100]) == 0
    assert await queue(platform, new_messages(7_501, broadcast_id=broadcast)) == 1

    async with platform.runtime("notify").uow(Principal.system()) as uow:
        progress = (await broadcasts_progress(uow, broadcast_ids=[broadcast]))[broadcast]
    assert progress["queued"] == 7_501
    assert sum(progress.values()) == 7_501


async def test_cancelling_a_broadcast_stops_what_was_not_handed_to_a_gateway(
    platform: Platform,
) -> None:
    broadcast, other = uuid.uuid4(), uuid.uuid4()
    await queue(platform, new_messages(50, broadcast_id=broadcast))
    await queue(platform, new_messages(5, broadcast_id=other, first_phone=1_000))

    async with platform.runtime("notify").uow(Principal.system()) as uow:
        assert await cancel_broadcast(uow, broadcast_id=broadcast) == 50
        await uow.commit()
    async with platform.runtime("notify").uow(Principal.system()) as uow:
        progress = await broadcasts_progress(uow, broadcast_ids=[broadcast, other])
        assert progress[broadcast]["cancelled"] == 50
        assert progress[other]["queued"] == 5
        # Cancelling again finds nothing left to cancel.
        assert await cancel_broadcast(uow, broadcast_id=broadcast) == 0


# ---- the dispatcher against the fake gateway ----

SHANGHAI = ZoneInfo("Asia/Shanghai")
# A weekday afternoon in the town: no quiet hours.
NOON = datetime(2026, 3, 2, 14, 0, tzinfo=SHANGHAI).astimezone(UTC)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSms]:
    gateway = await FakeSms.start()
    yield gateway
    await gateway.stop()


def dispatcher_of(
    platform: Platform,
    primary: FakeSms,
    *,
    fallback: FakeSms | None = None,
    **options: Any,
) -> Dispatcher:
    settings = NotifySettings(
        **{
            "gateway": "http",
            "gateway_url": primary.url,
            "retry_base_seconds": 1.0,
            "retry_cap_seconds": 60.0,
            "call_timeout_seconds": 2.0,
            "segments_per_second": 1_000_000,
            "burst_segments": 100_000,
            **({"fallback_gateway": "http", "fallback_url": fallback.url} if fallback else {}),
            **options,
        }
    )
    return dispatcher_for(platform.runtime("notify"), settings)


async def states(platform: Platform) -> dict[str, int]:
    async with platform.runtime("notify").uow(Principal.system()) as uow:
        rows = await uow.session.execute(
            select(Message.state, func.count()).group_by(Message.state)
        )
        return {state: int(count) for state, count in rows.all()}


async def queue_at(platform: Platform, messages: list[NewMessage], *, now: datetime) -> int:
    async with platform.runtime("notify").uow(Principal.system()) as uow:
        new = await enqueue(uow, messages=messages, now=now)
        await uow.commit()
    return new


async def test_a_broadcast_goes_out_in_batches_of_a_thousand_each_number_once(
    platform: Platform, fake: FakeSms
) -> None:
    await queue_at(platform, new_messages(2_500, broadcast_id=uuid.uuid4()), now=NOON)
    dispatcher = dispatcher_of(platform, fake)

    await dispatcher.drain(now=NOON)

    assert await states(platform) == {"sent": 2_500}
    assert fake.calls == 3
    assert len(fake.handed) == 2_500 and not fake.twice()


async def test_a_gateway_outage_mid_broadcast_delays_messages_and_loses_none(
    platform: Platform, fake: FakeSms
) -> None:
    await queue_at(platform, new_messages(3_000, broadcast_id=uuid.uuid4()), now=NOON)
    dispatcher = dispatcher_of(platform, fake, claim_size=500, batch_numbers=250)
    await dispatcher.step(now=NOON)
    assert await states(platform) == {"sent": 500, "queued": 2_500}

    await fake.stop()  # the provider goes down mid-broadcast
    await dispatcher.step(now=NOON)
    down = await states(platform)
    assert down == {"sent": 500, "queued": 2_500}
    later = NOON + timedelta(minutes=5)
    await dispatcher.step(now=later)  # still down: backed off again, nothing lost
    assert await states(platform) == down

    await fake.listen()
    await dispatcher.drain(now=later + timedelta(minutes=5))

    assert await states(platform) == {"sent": 3_000}
    assert len(fake.handed) == 3_000 and not fake.twice()


async def test_a_timeout_after_the_gateway_accepted_is_reconciled_not_sent_twice(
    platform: Platform, fake: FakeSms
) -> None:
    await queue_at(platform, new_messages(40, priority=Priority.urgent), now=NOON)
    dispatcher = dispatcher_of(platform, fake, call_timeout_seconds=0.3)
    fake.control(mode="hang", times=1)

    await dispatcher.step(now=NOON)
    assert await states(platform) == {"unknown": 40}
    assert fake.calls == 1

    await dispatcher.drain(now=NOON + timedelta(minutes=2))

    assert await states(platform) == {"sent": 40}
    # The gateway's status query said it had them: no second call.
    assert fake.calls == 1 and len(fake.handed) == 40 and not fake.twice()


async def test_a_failing_primary_fails_over_and_nobody_gets_two(
    platform: Platform, client: httpx.AsyncClient, town: Town, fake: FakeSms
) -> None:
    fallback = await FakeSms.start()
    try:
        await queue_at(platform, new_messages(2_000, broadcast_id=uuid.uuid4()), now=NOON)
        dispatcher = dispatcher_of(
            platform,
            fake,
            fallback=fallback,
            batch_numbers=100,
            claim_size=400,
            failover_min_calls=3,
            call_timeout_seconds=0.3,
        )
        await dispatcher.step(now=NOON)  # 400 go through the primary
        # Then it answers 500s (nothing sent) and, once, accepts and never answers.
        fake.control(mode="hang", times=1)
        await dispatcher.step(now=NOON)
        fake.control(mode="fail", fail_status=500)
        moment = NOON
        for _ in range(30):
            moment += timedelta(minutes=2)
            await dispatcher.drain(now=moment)
            if await states(platform) == {"sent": 2_000}:
                break

        assert await states(platform) == {"sent": 2_000}
        assert dispatcher.gateways.active == "fallback"
        handed = fake.handed + fallback.handed
        assert len(handed) == 2_000 and all(count == 1 for count in handed.values())
        assert fallback.handed  # the fallback took over
        switches = await recorded_switches(platform)
        assert [(s.from_gateway, s.to_gateway) for s in switches] == [("primary", "fallback")]
        assert "failed" in switches[0].reason
        shown = await client.get("/v1/sms-gateways", headers=town.operator)
        assert shown.status_code == 200, shown.text
        assert shown.json()["active"] == "fallback"
        assert shown.json()["switches"][0]["reason"] == switches[0].reason
    finally:
        await fallback.stop()


async def test_calls_failing_together_switch_to_the_fallback_once_never_back(
    platform: Platform, fake: FakeSms
) -> None:
    """A dispatcher's calls to a failing primary end together: each judges the primary
    unhealthy, and the first to take the switch moves traffic to the fallback (recording the
    switch takes a moment). A call judged before that switch must not make another one: it
    would send traffic back to the primary it judged failing."""
    kv = platform.runtime("notify").kv
    fallback = await FakeSms.start()
    try:
        dispatcher = dispatcher_of(platform, fake, fallback=fallback)
        primary, second = dispatcher.gateways.primary, dispatcher.gateways.fallback

        async def recorded_slowly(switch: Switch) -> None:
            await asyncio.sleep(0.005)  # a row and an event, as the dispatcher records it

        for attempt in range(10):
            gateways = Gateways(
                kv=kv,
                primary=primary,
                fallback=second,
                min_calls=3,
                on_switch=recorded_slowly,
                prefix=f"failover-test:{uuid.uuid4()}",
            )

            async def call_ends(after: float, gateways: Gateways = gateways) -> None:
                await asyncio.sleep(after)
                await gateways.record("primary", failed=True, latency=0.01)

            # Calls ending a tenth of a millisecond apart: some are judged while the switch is
            # being made.
            await asyncio.gather(*(call_ends(n * 0.0001) for n in range(100)))
            assert gateways.active == "fallback", attempt
            assert [(s.from_gateway, s.to_gateway) for s in gateways.switches] == [
                ("primary", "fallback")
            ], attempt
    finally:
        await fallback.stop()


async def test_replicas_share_the_gateways_health_and_switch_together(
    platform: Platform, fake: FakeSms
) -> None:
    fallback = await FakeSms.start()
    try:
        await queue_at(platform, new_messages(2_000, broadcast_id=uuid.uuid4()), now=NOON)
        options = {"batch_numbers": 100, "claim_size": 400, "failover_min_calls": 3}
        first, second = (
            dispatcher_of(platform, fake, fallback=fallback, **options) for _ in range(2)
        )
        fake.control(mode="fail", fail_status=503)
        await first.step(now=NOON)  # four calls refused: the first replica switches
        assert first.gateways.active == "fallback"
        calls_to_primary = fake.refused_calls

        # The second replica never saw the primary fail: it follows the switch at once.
        await second.step(now=NOON)
        assert second.gateways.active == "fallback"
        assert fake.refused_calls == calls_to_primary
        assert len(fallback.handed) == 400

        moment = NOON
        for _ in range(10):
            moment += timedelta(minutes=1)
            await asyncio.gather(first.drain(now=moment), second.drain(now=moment))
            if await states(platform) == {"sent": 2_000}:
                break
        assert await states(platform) == {"sent": 2_000}
        assert not fake.handed and not fallback.twice()
        # One switch, made and recorded by one replica.
        switches = await recorded_switches(platform)
        assert [(s.from_gateway, s.to_gateway) for s in switches] == [("primary", "fallback")]
        assert (len(first.gateways.switches), second.gateways.switches) == (1, [])
    finally:
        await fallback.stop()


async def recorded_switches(platform: Platform) -> list[Any]:
    async with platform.runtime("notify").uow(Principal.system()) as uow:
        query = select(GatewaySwitch.from_gateway, GatewaySwitch.to_gateway, GatewaySwitch.reason)
        return list((await uow.session.execute(query.order_by(GatewaySwitch.at))).all())


async def test_an_urgent_message_overtakes_a_queued_broadcast(
    platform: Platform, fake: FakeSms
) -> None:
    await queue_at(platform, new_messages(7_500, broadcast_id=uuid.uuid4()), now=NOON)
    dispatcher = dispatcher_of(platform, fake, parallel_calls=1)
    await dispatcher.step(now=NOON)  # the broadcast is under way
    sealed = new_messages(1, priority=Priority.urgent, first_phone=90_000, text="您所在单元已封控")
    await queue_at(platform, sealed, now=NOON + timedelta(seconds=1))

    await dispatcher.step(now=NOON + timedelta(seconds=1))

    calls = list(fake.references.values())
    numbers_of_third_call = [a["number"] for a in calls[2]["accepted"]]
    assert numbers_of_third_call == [sealed[0].phone]  # first of its step, alone (its text)
    await dispatcher.drain(now=NOON + timedelta(seconds=2))
    assert await states(platform) == {"sent": 7_501}


async def test_quiet_hours_hold_a_non_urgent_message_until_seven(
    platform: Platform, fake: FakeSms
) -> None:
    night = datetime(2026, 3, 2, 23, 0, tzinfo=SHANGHAI)
    normal = new_messages(1, priority=Priority.normal, text="明日核酸安排")
    short_lived = new_messages(
        1,
        priority=Priority.normal,
        first_phone=10,
        text="今晚物资",
        valid_until=datetime(2026, 3, 3, 6, 0, tzinfo=SHANGHAI),
    )
    sealed = new_messages(1, priority=Priority.urgent, first_phone=20, text="您所在单元已封控")
    await queue_at(platform, normal + short_lived + sealed, now=night)
    dispatcher = dispatcher_of(platform, fake)

    await dispatcher.drain(now=night)
    assert set(fake.handed) == {sealed[0].phone}  # urgent passes quiet hours
    assert await states(platform) == {"sent": 1, "deferred": 1, "expired": 1}

    await dispatcher.drain(now=datetime(2026, 3, 3, 6, 59, tzinfo=SHANGHAI))
    assert set(fake.handed) == {sealed[0].phone}
    await dispatcher.drain(now=datetime(2026, 3, 3, 7, 0, tzinfo=SHANGHAI))
    assert set(fake.handed) == {sealed[0].phone, normal[0].phone}
    assert await states(platform) == {"sent": 2, "expired": 1}


@pytest.fixture
def london_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The town office's clock (CORDON_TIME_ZONE) set elsewhere than the default; requested
    before ``platform`` so the platform's settings read it too."""
    monkeypatch.setenv("CORDON_TIME_ZONE", "Europe/London")
    get_settings.cache_clear()
    yield "Europe/London"
    get_settings.cache_clear()


async def test_quiet_hours_follow_the_town_office_clock(
    london_clock: str, platform: Platform, fake: FakeSms
) -> None:
    london = ZoneInfo(london_clock)
    assert platform.runtime("notify").settings.time_zone == london_clock
    # 23:00 in Shanghai is the afternoon on the town's clock: it goes at once.
    afternoon = datetime(2026, 3, 2, 23, 0, tzinfo=SHANGHAI)
    day = new_messages(1, priority=Priority.normal, text="明日核酸安排")
    night = datetime(2026, 3, 2, 23, 0, tzinfo=london)
    late = new_messages(1, priority=Priority.normal, first_phone=10, text="今晚物资")
    await queue_at(platform, day, now=afternoon)
    dispatcher = dispatcher_of(platform, fake)
    await dispatcher.drain(now=afternoon)
    assert set(fake.handed) == {day[0].phone}

    await queue_at(platform, late, now=night)
    await dispatcher.drain(now=night)
    await dispatcher.drain(now=datetime(2026, 3, 3, 6, 59, tzinfo=london))
    assert set(fake.handed) == {day[0].phone}
    await dispatcher.drain(now=datetime(2026, 3, 3, 7, 0, tzinfo=london))
    assert set(fake.handed) == {day[0].phone, late[0].phone}


async def test_times_in_a_text_read_the_town_office_clock(
    london_clock: str, client: httpx.AsyncClient, town: Town
) -> None:
    preview = await client.post(
        "/v1/templates/sealed/preview",
        json={
            "town_id": str(town.id),
            "variables": {"area": "3-2", "time": "2022-04-01T17:30:00Z"},
        },
        headers=town.operator,
    )
    assert preview.status_code == 200, preview.text
    texts = {t["locale"]: t["text"] for t in preview.json()["texts"]}
    # 17:30 UTC is 18:30 in London on 1 April (summer time), not 01:30 the next day.
    assert texts["en"].startswith("3-2 is sealed from 1 Apr 18:30")
    assert "4月1日 18:30" in texts["zh-CN"]


async def test_a_phone_gets_at_most_its_daily_cap_of_non_urgent_messages(
    platform: Platform, fake: FakeSms
) -> None:
    phone = "+8613900000001"
    causes = [
        replace(m, phone=phone, recipient_id=uuid.uuid4())
        for m in new_messages(5, priority=Priority.normal)
    ]
    urgent = replace(causes[0], priority=Priority.urgent, cause_id=uuid.uuid4())
    await queue_at(platform, [*causes, urgent], now=NOON)
    dispatcher = dispatcher_of(platform, fake, daily_cap=3)

    await dispatcher.drain(now=NOON)

    assert fake.handed[phone] == 4  # three under the cap, and the urgent one above it
    assert await states(platform) == {"sent": 4, "deferred": 2}
    await dispatcher.drain(now=datetime(2026, 3, 3, 7, 0, tzinfo=SHANGHAI))
    assert await states(platform) == {"sent": 6}


async def test_a_final_error_fails_the_message_with_the_providers_reason(
    platform: Platform, fake: FakeSms
) -> None:
    messages = new_messages(3, priority=Priority.high)
    fake.control(invalid=[messages[1].phone])
    await queue_at(platform, messages, now=NOON)

    await dispatcher_of(platform, fake).drain(now=NOON)

    async with platform.runtime("notify").uow(Principal.system()) as uow:
        query = select(Message.phone, Message.error).where(Message.state == "failed")
        failed = (await uow.session.execute(query)).one()
        outbox = platform.runtime("notify").spec.kernel.outbox
        events = (
            await uow.session.scalars(
                select(outbox.c.routing_key).where(outbox.c.routing_key == "notify.message.failed")
            )
        ).all()
    assert failed.phone == messages[1].phone and failed.error == "invalid number"
    assert len(events) == 1
    assert await states(platform) == {"sent": 2, "failed": 1}


async def test_a_throttling_gateway_is_retried_after_its_retry_after(
    platform: Platform, fake: FakeSms
) -> None:
    await queue_at(platform, new_messages(10), now=NOON)
    fake.control(mode="fail", fail_status=429, times=1)
    dispatcher = dispatcher_of(platform, fake)

    await dispatcher.drain(now=NOON)
    assert await states(platform) == {"queued": 10} and fake.refused_calls == 1
    await dispatcher.drain(now=NOON + timedelta(seconds=3))
    assert await states(platform) == {"sent": 10} and not fake.twice()


# ---- receipts ----

SECRET = "receipts-secret-" + "r" * 20


@pytest.fixture
def receipt_secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("CORDON_NOTIFY_RECEIPT_SECRET", SECRET)
    get_notify_settings.cache_clear()
    yield SECRET
    get_notify_settings.cache_clear()


async def post_receipts(
    client: httpx.AsyncClient, receipts: list[dict[str, Any]], *, secret: str
) -> httpx.Response:
    body = json.dumps({"receipts": receipts}).encode()
    headers = {"Content-Type": "application/json", "X-Signature": sign(body, secret=secret)}
    return await client.post("/v1/sms-receipts", content=body, headers=headers)


async def test_receipts_are_signed_and_duplicates_or_late_ones_change_nothing(
    platform: Platform, client: httpx.AsyncClient, fake: FakeSms, receipt_secret: str
) -> None:
    await queue_at(platform, new_messages(5, priority=Priority.high), now=NOON)
    fake.control(receipt_mode="duplicate")
    await dispatcher_of(platform, fake).drain(now=NOON)
    receipts = fake.take_receipts()
    assert len(receipts) == 10

    forged = await post_receipts(client, receipts, secret="not-the-secret")
    assert forged.status_code == 401
    assert await states(platform) == {"sent": 5}

    answer = await post_receipts(client, list(reversed(receipts)), secret=receipt_secret)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"applied": 5, "ignored": 5}
    # A late failure report for a delivered message: it stays delivered.
    late = {**receipts[0], "status": "failed", "error": "expired in network"}
    again = await post_receipts(client, [late, receipts[1]], secret=receipt_secret)
    assert again.json() == {"applied": 0, "ignored": 2}
    assert await states(platform) == {"delivered": 5}
    assert await outbox_types(platform) == {"notify.message.delivered": 1}


async def outbox_types(platform: Platform) -> dict[str, int]:
    outbox = platform.runtime("notify").spec.kernel.outbox
    async with platform.runtime("notify").uow(Principal.system()) as uow:
        query = select(outbox.c.routing_key, func.count()).group_by(outbox.c.routing_key)
        return {key: int(n) for key, n in (await uow.session.execute(query)).all()}


# ---- a notify worker killed mid-broadcast ----


def worker_env(settings: Settings, fake: FakeSms) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORDON_")}
    env.update(
        CORDON_DATA_DIR=str(settings.data_dir),
        CORDON_SECRET_KEY=settings.secret_key,
        CORDON_SCHEMA_PREFIX=settings.schema_prefix,
        CORDON_NOTIFY_GATEWAY="http",
        CORDON_NOTIFY_GATEWAY_URL=fake.url,
        CORDON_NOTIFY_LEASE_SECONDS="2",
        CORDON_NOTIFY_QUIET_HOURS="",
        CORDON_NOTIFY_CLAIM_SIZE="200",
        CORDON_NOTIFY_BATCH_NUMBERS="50",
        CORDON_NOTIFY_SEGMENTS_PER_SECOND="1000000",
        CORDON_NOTIFY_BURST_SEGMENTS="100000",
    )
    if settings.database_url:
        env.update(
            CORDON_MODE="distributed",
            CORDON_DATABASE_URL=settings.database_url,
            CORDON_BROKER_URL=settings.broker_url or "",
            CORDON_REDIS_URL=settings.redis_url or "",
            CORDON_EXCHANGE=settings.exchange,
        )
    return env


async def test_a_worker_killed_mid_broadcast_loses_none_and_sends_none_twice(
    platform: Platform, settings: Settings, fake: FakeSms, tmp_path: Path
) -> None:
    # The worker judges by the real clock: whatever the hour, no quiet hours here.
    await queue_at(platform, new_messages(3_000, broadcast_id=uuid.uuid4()), now=datetime.now(UTC))
    fake.control(delay=0.02)
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(  # noqa: ASYNC220 (started once, killed below)
        [CORDON, "worker", "--service", "notify"],
        cwd=tmp_path,
        env=worker_env(settings, fake),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        async def under_way() -> bool:
            return fake.calls >= 10

        await eventually(under_way, within=60, what="the worker to be sending")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)
    handed_before = sum(fake.handed.values())
    assert 0 < handed_before < 3_000

    await asyncio.sleep(2.5)  # the dead worker's leases run out
    survivor = dispatcher_of(platform, fake, lease_seconds=2, quiet_hours="")
    for _ in range(20):
        await survivor.drain(now=datetime.now(UTC))
        if await states(platform) == {"sent": 3_000}:
            break
        await asyncio.sleep(0.5)

    assert await states(platform) == {"sent": 3_000}, (tmp_path / "worker.log").read_text()
    assert len(fake.handed) == 3_000 and not fake.twice()


async def test_two_dispatcher_replicas_share_the_queue_and_nobody_gets_two(
    platform: Platform, fake: FakeSms
) -> None:
    await queue_at(platform, new_messages(4_000, broadcast_id=uuid.uuid4()), now=NOON)
    replicas = [dispatcher_of(platform, fake, claim_size=300, batch_numbers=100) for _ in range(2)]

    await asyncio.gather(*(replica.drain(now=NOON) for replica in replicas))

    assert await states(platform) == {"sent": 4_000}
    assert len(fake.handed) == 4_000 and not fake.twice()


async def test_the_log_gateway_writes_each_sms_it_would_send(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    """The embedded default: `make run` shows in its log what people would receive."""
    text = "您所在单元已封控，请居家等待上门核酸。"
    sealed = new_messages(2, priority=Priority.urgent, text=text)
    await queue_at(platform, sealed, now=NOON)
    dispatcher = dispatcher_for(platform.runtime("notify"), NotifySettings(gateway="log"))

    with caplog.at_level(logging.INFO, logger="cordon.sms"):
        await dispatcher.drain(now=NOON)

    assert await states(platform) == {"sent": 2}
    [line] = [r.getMessage() for r in caplog.records if r.name == "cordon.sms"]
    assert sealed[0].phone in line and sealed[1].phone in line
    assert text in line


async def test_a_receipt_settles_a_message_whose_call_timed_out(
    platform: Platform, client: httpx.AsyncClient, fake: FakeSms, receipt_secret: str
) -> None:
    await queue_at(platform, new_messages(3, priority=Priority.urgent), now=NOON)
    fake.control(mode="hang", times=1)
    dispatcher = dispatcher_of(platform, fake, call_timeout_seconds=0.3)
    await dispatcher.step(now=NOON)
    assert await states(platform) == {"unknown": 3}

    # The gateway's receipts arrive before anyone asked it: that is an answer too.
    answer = await post_receipts(client, fake.take_receipts()[:2], secret=receipt_secret)
    assert answer.json() == {"applied": 2, "ignored": 0}
    await dispatcher.drain(now=NOON + timedelta(minutes=2))

    assert await states(platform) == {"delivered": 2, "sent": 1}
    assert fake.calls == 1 and not fake.twice()
