"""Notify's delivery on PostgreSQL through the fake SMS gateway (a separate process on
loopback): a town-wide broadcast of ``--messages`` queued messages handed to the gateway with
their states recorded (``sent``), in messages/s, as ratios to raw confirmed publishes to
RabbitMQ and a raw COPY of the same rows into a bare table shaped like ``messages``, measured
in the same run; then a 7,500-recipient compound from enqueue to the last number handed, and
the latency of an urgent message from enqueue to the gateway while the dispatcher runs.

    .venv/bin/python -m bench.notify_broadcast [--messages 300000]

The latency from a positive result upload to the SMS is bench/notify_alert_latency.py; this
one measures enqueue → gateway, the dispatcher's share of it.
"""

import argparse
import asyncio
import json
import socket
import statistics
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

import httpx
from sqlalchemy import func, select

from bench.bus import raw_publish_and_consume
from bench.common import (
    ROOT,
    Rate,
    emit,
    goal_line,
    machine_line,
    pg_platform,
    ratio_line,
    raw_copy,
    stopwatch,
    unique_prefix,
)
from bench.fake_sms import FakeSms
from cordon.platform import Platform
from services.notify.delivery.service import Dispatcher
from services.notify.delivery.worker import dispatcher_for
from services.notify.messages.service import NewMessage, enqueue
from services.notify.models import CauseKind, Message, Priority, RecipientKind
from services.notify.settings import NotifySettings
from shared.auth import Principal

COMPOUND = 7_500
ENQUEUE_CHUNK = 50_000
LATENCY_SAMPLES = 40
TOWN = uuid.uuid4()
TEXT = "【封控办】明早7点起全员核酸，请按楼栋顺序下楼，戴好口罩，保持两米间距。"
# Columns the raw COPY writes, as enqueue does.
COPY_COLUMNS = (
    "id", "key", "cause_kind", "cause_id", "broadcast_id", "recipient_kind", "recipient_id",
    "phone", "language", "template_key", "template_version", "text", "segments", "priority",
    "rank", "state", "send_at", "attempts", "next_attempt_at", "created_at", "updated_at",
    "town_id",
)  # fmt: skip


def broadcast(count: int, *, first: int, priority: Priority = Priority.bulk) -> list[NewMessage]:
    cause = uuid.uuid4()
    return [
        NewMessage(
            cause_kind=CauseKind.broadcast,
            cause_id=cause,
            broadcast_id=cause,
            recipient_kind=RecipientKind.resident,
            recipient_id=uuid.uuid4(),
            phone=f"+86139{first + i:08d}",
            language="zh-CN",
            template_key="round.scheduled",
            template_version=1,
            text=TEXT,
            segments=1,
            priority=priority,
            town_id=TOWN,
        )
        for i in range(count)
    ]


def settings_for(url: str) -> NotifySettings:
    return NotifySettings(
        gateway="http",
        gateway_url=url,
        quiet_hours="",
        segments_per_second=1_000_000,
        burst_segments=100_000,
        claim_size=5_000,
        parallel_calls=5,
    )


async def queue(platform: Platform, messages: list[NewMessage], *, now: datetime) -> None:
    for start in range(0, len(messages), ENQUEUE_CHUNK):
        async with platform.runtime("notify").uow(Principal.system()) as uow:
            await enqueue(uow, messages=messages[start : start + ENQUEUE_CHUNK], now=now)
            await uow.commit()


async def states(platform: Platform) -> dict[str, int]:
    async with platform.runtime("notify").uow(Principal.system()) as uow:
        query = select(Message.state, func.count()).group_by(Message.state)
        return {s: int(n) for s, n in (await uow.session.execute(query)).all()}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def fake_process(port: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.fake_sms", "--port", str(port),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    await process.stdout.readline()  # "fake SMS gateway on ..."
    return process


async def records(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=60) as client:
        answer: dict[str, Any] = (await client.get(f"{url}/records")).json()
        return answer


@dataclass(frozen=True)
class Figures:
    messages_per_second: float
    publish_per_second: float
    copy_per_second: float
    compound_seconds: float
    latency_p50_ms: float
    latency_p95_ms: float


async def broadcast_rate(
    platform: Platform, *, count: int, url: str, out: TextIO
) -> tuple[Rate, Rate, Rate]:
    now = datetime.now(UTC)
    messages = broadcast(count, first=0)
    with stopwatch() as queued:
        await queue(platform, messages, now=now)
    dispatcher = dispatcher_for(platform.runtime("notify"), settings_for(url))
    try:
        with stopwatch() as handed:
            await dispatcher.drain(now=now, limit=1_000_000)
    finally:
        await dispatcher.gateways.close()
    found, seen = await states(platform), await records(url)
    if found != {"sent": count} or len(seen["handed"]) != count or seen["twice"]:
        raise SystemExit(f"not every message went exactly once: {found}, twice {seen['twice'][:5]}")
    schema = platform.settings.service_schema("notify")
    rows = [_copy_row(m, now=now) for m in broadcast(count, first=count)]
    copied = await raw_copy(
        label="raw COPY, like messages, bare",
        schema=schema,
        like="messages",
        columns=COPY_COLUMNS,
        records=rows,
        full=False,
    )
    return (
        Rate("enqueue (idempotent by key, COPY + INSERT … ON CONFLICT)", count, queued[0], "msgs"),
        Rate("handed to the gateway, state recorded (sent)", count, handed[0], "msgs"),
        copied,
    )


def _copy_row(message: NewMessage, *, now: datetime) -> tuple[Any, ...]:
    return (
        uuid.uuid4(), message.key, message.cause_kind.value, message.cause_id,
        message.broadcast_id, message.recipient_kind.value, message.recipient_id, message.phone,
        message.language, message.template_key, message.template_version, message.text,
        message.segments, message.priority.value, 3, "queued", now, 0, now, now, now, TOWN,
    )  # fmt: skip


async def compound_seconds(platform: Platform, *, url: str, size: int) -> float:
    now = datetime.now(UTC)
    messages = broadcast(size, first=10_000_000)
    dispatcher = dispatcher_for(platform.runtime("notify"), settings_for(url))
    try:
        with stopwatch() as elapsed:
            await queue(platform, messages, now=now)
            await dispatcher.drain(now=now)
    finally:
        await dispatcher.gateways.close()
    return elapsed[0]


async def urgent_latency(platform: Platform, *, samples: int) -> list[float]:
    """Enqueue → handed to the gateway, for urgent messages one at a time, with the
    dispatcher running as in a worker (its own loop, polling when idle)."""
    fake = await FakeSms.start()
    dispatcher: Dispatcher = dispatcher_for(platform.runtime("notify"), settings_for(fake.url))
    running = asyncio.create_task(dispatcher.run())
    latencies = []
    try:
        for i in range(samples):
            [message] = broadcast(1, first=20_000_000 + i, priority=Priority.urgent)
            started = time.monotonic()
            await queue(platform, [message], now=datetime.now(UTC))
            latencies.append(await fake.arrival(message.phone) - started)
            await asyncio.sleep(0.05)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await dispatcher.gateways.close()
        await fake.stop()
    return latencies


async def run(
    *, count: int, out: TextIO, compound: int = COMPOUND, samples: int = LATENCY_SAMPLES
) -> Figures:
    prefix = unique_prefix("notify")
    emit(out, f"notify broadcast on PostgreSQL, {count:,} messages (schemas {prefix}*)")
    emit(out, machine_line())
    publish_raw, _ = await raw_publish_and_consume(count=min(count, 20_000), prefix=prefix)
    port = free_port()
    fake = await fake_process(port)
    url = f"http://127.0.0.1:{port}"
    try:
        async with pg_platform(["notify"], prefix=prefix) as platform:
            queued, handed, copied = await broadcast_rate(platform, count=count, url=url, out=out)
            seconds = await compound_seconds(platform, url=url, size=compound)
            latencies = await urgent_latency(platform, samples=samples)
    finally:
        fake.terminate()
        await fake.wait()
    p50 = statistics.median(latencies) * 1000
    p95 = statistics.quantiles(latencies, n=20)[-1] * 1000
    emit(
        out,
        publish_raw.line(),
        copied.line(),
        queued.line(),
        handed.line(),
        ratio_line(handed, publish_raw),
        ratio_line(handed, copied),
        goal_line("≥ 10,000 messages/s handed with their states", handed.per_second >= 10_000),
        f"{f'a {compound:,}-recipient compound, enqueue → last handed':<58} {seconds:10.2f} s",
        goal_line("a 7,500-recipient compound in ≤ 1 s", seconds <= 1.0),
        f"{'urgent message, enqueue → gateway (p50 / p95)':<58} {p50:7.0f} / {p95:.0f} ms",
        goal_line(
            "p95 ≤ 1 s (enqueue → gateway; from an upload: notify_alert_latency)", p95 <= 1000
        ),
    )
    return Figures(handed.per_second, publish_raw.per_second, copied.per_second, seconds, p50, p95)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()
    figures = asyncio.run(run(count=args.messages, out=sys.stdout))
    if args.json:
        print(json.dumps(asdict(figures)))


if __name__ == "__main__":
    main()
