"""Notify's delivery on both backends: messages created once per key, cancelled and counted
for a broadcast; the dispatcher's lanes, quiet hours, limits, retries, failover and
receipts against a fake SMS gateway on loopback."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bench.fake_sms import FakeSms
from cordon.platform import Platform
from services.notify.delivery.service import Dispatcher
from services.notify.delivery.worker import dispatcher_for
from services.notify.messages.service import (
    NewMessage,
    broadcast_progress,
    cancel_broadcast,
    enqueue,
)
from services.notify.models import CauseKind, Message, Priority, RecipientKind
from services.notify.settings import NotifySettings
from shared.auth import Principal

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
        progress = await broadcast_progress(uow, broadcast_id=broadcast)
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
        assert (await broadcast_progress(uow, broadcast_id=broadcast))["cancelled"] == 50
        assert (await broadcast_progress(uow, broadcast_id=other))["queued"] == 5
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
