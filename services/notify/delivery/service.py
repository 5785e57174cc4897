"""The dispatcher: moves messages from ``queued`` to a gateway and records what became of
them, exactly once per message whatever crashes, retries, replicas or failover.

One step (:meth:`Dispatcher.step`, given the time to judge by):

1. **Housekeeping**: unsent messages past ``valid_until`` expire; ``sending`` claims whose
   lease ran out (a worker killed mid-call) become ``unknown``.
2. **Reconcile** ``unknown`` batches before anything else is sent for them: the effects
   ledger (``shared/effects.py``) knows whether the call was confirmed; if not, the gateway's
   status query says whether it received the batch's reference. Received: the messages are
   ``sent``. Never received: they are queued again, free to go through any gateway. No
   answer: they stay ``unknown`` and are asked about again later — never a blind resend.
3. **Claim** due ``queued``/``deferred`` messages, urgent first then oldest, under
   ``FOR UPDATE SKIP LOCKED`` (SQLite: one writer). Non-urgent ones in the town's quiet
   hours are deferred to their end (or expire if their validity ends first), and those over
   the per-phone daily cap to the next morning. The rest become ``sending`` with a lease, in
   batches of one text to at most 1,000 distinct numbers, each batch with its own id.
4. **Send** each batch under the ledger key ``notify:<batch id>`` (also the gateway's
   reference): claim the key, take the segments from the gateway's token bucket (Redis,
   shared by replicas), call, confirm. Accepted numbers become ``sent``, rejected ones
   ``failed`` with the provider's reason; a busy gateway (429, 503, unreachable) sends them
   back to ``queued`` with exponential backoff and jitter; a final error fails them; a
   timeout or another 5xx leaves them ``unknown`` for step 2.

The ledger entry and the messages' batch id are what make a second SMS impossible: a
batch's reference is called at most once unless the gateway itself says it never got it.
"""

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from services.notify.delivery import repository
from services.notify.delivery.rules import next_morning, quiet_until, retry_at
from services.notify.gateways import (
    Gateway,
    GatewayBusy,
    GatewayError,
    GatewayRejected,
    Handed,
)
from services.notify.gateways.failover import Gateways, Switch
from services.notify.messages.service import WAKEUP
from services.notify.models import PRIORITY_RANK, GatewaySwitch, Message, MessageState, Priority
from services.notify.settings import NotifySettings
from shared.auth import Principal
from shared.contracts.notify import GatewaySwitched, MessageOutcome, MessagesFailed
from shared.effects import EffectInProgress, EffectLedger
from shared.ids import new_id
from shared.observability import SMS_HANDED, SMS_MESSAGES
from shared.ratelimit import DailyCap, RateLimit
from shared.service import ServiceRuntime
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)
URGENT_RANK = PRIORITY_RANK[Priority.urgent]
# Unknown messages reconciled per step (two gateway batches).
RECONCILE_LIMIT = 2_000
# How often abandoned claims are looked for.
HOUSEKEEPING_SECONDS = 1.0
# How often waiting messages past their validity are marked expired: the claim expires them
# anyway; this only keeps a broadcast's progress honest meanwhile (it reads the whole queue).
EXPIRY_SECONDS = 30.0
PRINCIPAL = Principal.system("notify.dispatcher")


def reference_of(batch_id: uuid.UUID) -> str:
    """The ledger key of a batch, and the reference the gateway knows it by."""
    return f"notify:{batch_id}"


def batch_of(reference: str) -> uuid.UUID | None:
    prefix, _, rest = reference.partition(":")
    if prefix != "notify":
        return None
    try:
        return uuid.UUID(rest)
    except ValueError:
        return None


@dataclass
class Batch:
    id: uuid.UUID
    gateway: str
    text: str
    segments: int
    # phone -> message id; a phone appears once per batch, so the gateway's answer per
    # number names one message.
    messages: dict[str, uuid.UUID] = field(default_factory=dict)
    attempts: int = 0

    @property
    def reference(self) -> str:
        return reference_of(self.id)

    @property
    def cost(self) -> int:
        return self.segments * len(self.messages)


@dataclass
class Plan:
    """What one claim decided for each message it looked at."""

    batches: list[Batch] = field(default_factory=list)
    deferred: dict[tuple[datetime, str], list[uuid.UUID]] = field(
        default_factory=lambda: defaultdict(list)
    )
    expired: dict[str, list[uuid.UUID]] = field(default_factory=lambda: defaultdict(list))


class Dispatcher:
    def __init__(
        self,
        runtime: ServiceRuntime,
        *,
        settings: NotifySettings,
        gateways: Gateways,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._runtime = runtime
        self._settings = settings
        self.gateways = gateways
        self._clock = clock
        # Quiet hours and daily caps read the town office's clock, as every service does.
        self._zone = runtime.settings.zone
        self._ledger = EffectLedger(
            database=runtime.database,
            table=runtime.spec.kernel.effects,
            lease_seconds=settings.lease_seconds,
        )
        self._cap = DailyCap(
            runtime.kv, name="notify:phone", limit=settings.daily_cap, zone=self._zone
        )
        self._rates: dict[str, RateLimit] = {}
        self._housekept = 0.0
        self._expired = float("-inf")

    # ---- the loop ----

    async def run(self) -> None:
        """Dispatch until cancelled. When idle, wait for an enqueue's wake-up (through the
        key-value store, so every replica hears it) or ``poll_seconds``, whichever first:
        deferred messages and retries come due without anyone saying so."""
        wake = asyncio.Event()
        listener = asyncio.create_task(self._listen(wake))
        sending: set[asyncio.Task[None]] = set()
        try:
            while True:
                handled = await self.step_ahead(now=self._clock(), sending=sending)
                if not handled:
                    woken = asyncio.ensure_future(wake.wait())
                    # Idle: until a wake-up, a claim's sends end (they may free more work),
                    # or the poll interval.
                    try:
                        await asyncio.wait(
                            [woken, *sending],
                            timeout=self._settings.poll_seconds,
                            return_when="FIRST_COMPLETED",
                        )
                    finally:
                        # Also when the loop is cancelled here: no waiter is left behind.
                        woken.cancel()
                    await _settled(sending, wait=None)
                    wake.clear()
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            await _stopped(sending)

    async def _listen(self, wake: asyncio.Event) -> None:
        while True:
            try:
                async for _ in self._runtime.kv.signals(WAKEUP):
                    wake.set()
            except Exception:
                # Without wake-ups the dispatcher still polls: later, never lost.
                log.warning("notify wake-ups unavailable; polling", exc_info=True)
                await asyncio.sleep(self._settings.poll_seconds)

    async def step(self, *, now: datetime) -> int:
        """One round of housekeeping, reconciling, claiming and sending; returns how many
        messages it moved (0: nothing was due)."""
        moved = await self.housekeeping(now=now)
        moved += await self.reconcile(now=now)
        moved += await self.dispatch(now=now)
        return moved

    async def step_ahead(self, *, now: datetime, sending: set["asyncio.Task[None]"]) -> int:
        """:meth:`step`, but the claim's batches are handed over in the background (added
        to ``sending``) while the next claim is made: the database and the gateway work at
        the same time. At most ``claims_in_flight`` claims are being sent at once. Safe as
        :meth:`step` is: each batch's messages are ``sending`` under their ledger entry
        from the claim's commit, whoever hands them over and whenever."""
        moved = await self.housekeeping(now=now)
        moved += await self.reconcile(now=now)
        while len(sending) >= self._settings.claims_in_flight:
            await _settled(sending, wait=asyncio.FIRST_COMPLETED)
        claimed, batches = await self._claim(now=now)
        if batches:
            sending.add(asyncio.create_task(self._send_all(batches, now=now, claimed=True)))
        return moved + claimed

    async def drain(self, *, now: datetime, limit: int = 10_000) -> int:
        """Steps at ``now`` until nothing more is due and nothing is being sent (tests and
        benchmarks)."""
        total = 0
        sending: set[asyncio.Task[None]] = set()
        try:
            for _ in range(limit):
                moved = await self.step_ahead(now=now, sending=sending)
                total += moved
                if not moved:
                    if not sending:
                        return total
                    # What is being sent may come back due (a busy gateway, silence).
                    await _settled(sending, wait=asyncio.ALL_COMPLETED)
        finally:
            await _stopped(sending)
        raise RuntimeError("the dispatcher kept finding work")

    # ---- 1. housekeeping ----

    async def housekeeping(self, *, now: datetime, force: bool = False) -> int:
        clock = time.monotonic()
        if not force and clock - self._housekept < HOUSEKEEPING_SECONDS:
            return 0
        self._housekept = clock
        expire = force or clock - self._expired >= EXPIRY_SECONDS
        async with self._uow() as uow:
            expired = await repository.expire_overdue(uow, now=now) if expire else 0
            lost = await repository.abandoned(uow, now=now)
            await uow.commit()
        if expire:
            self._expired = clock
        if lost:
            log.warning("%s messages were abandoned mid-send; reconciling them", lost)
        return expired + lost

    # ---- 2. reconcile ----

    async def reconcile(self, *, now: datetime) -> int:
        """Batches whose outcome is unknown, claimed again (``sending``) and settled."""
        lease = now + timedelta(seconds=self._settings.lease_seconds)
        async with self._uow() as uow:
            rows = await repository.due(uow, waiting=False, now=now, limit=RECONCILE_LIMIT)
            batches: dict[uuid.UUID, Batch] = {}
            for row in rows:
                if row.batch_id is None:
                    continue
                batch = batches.setdefault(
                    row.batch_id,
                    Batch(
                        id=row.batch_id,
                        gateway=row.gateway or "",
                        text=row.text,
                        segments=row.segments,
                    ),
                )
                batch.messages[row.phone] = row.id
                batch.attempts = max(batch.attempts, row.attempts)
            ids = [i for b in batches.values() for i in b.messages.values()]
            await repository.change(
                uow,
                ids,
                expect=[MessageState.unknown],
                state=MessageState.sending.value,
                lease_until=lease,
                updated_at=now,
            )
            await uow.commit()
        await self._send_all(list(batches.values()), now=now, claimed=False)
        return len(ids)

    # ---- 3. claim ----

    async def dispatch(self, *, now: datetime) -> int:
        """Claim due messages and hand their batches over; how many were claimed."""
        claimed, batches = await self._claim(now=now)
        await self._send_all(batches, now=now, claimed=True)
        return claimed

    async def _claim(self, *, now: datetime) -> tuple[int, list[Batch]]:
        gateway = await self.gateways.choose()
        async with self._uow() as uow:
            rows = await repository.due(uow, waiting=True, now=now, limit=self._settings.claim_size)
            if not rows:
                return 0, []
            plan = await self._plan(rows, now=now, gateway=gateway)
            await self._record_plan(uow, plan, now=now)
            await uow.commit()
        return len(rows), plan.batches

    async def _plan(self, rows: Sequence[Any], *, now: datetime, gateway: Gateway) -> Plan:
        plan = Plan()
        settings = self._settings
        zone = self._zone
        going = []
        capped = []
        for row in rows:
            if row.valid_until is not None and row.valid_until <= now:
                plan.expired["validity ended"].append(row.id)
            elif row.rank == URGENT_RANK:
                going.append(row)  # urgent: no quiet hours, no cap
            elif (later := self._quiet_until(row, now=now)) is not None:
                self._defer(plan, row, until=later, reason="quiet hours")
            elif row.attempts == 0:
                capped.append(row)  # counted once, on its first try
            else:
                going.append(row)
        keys = [f"{row.phone}:{row.template_key}" for row in capped]
        for row, allowed in zip(capped, await self._cap.allow_many(keys, now=now), strict=True):
            if allowed:
                going.append(row)
            else:
                window = settings.quiet_window(row.town_id)
                morning = next_morning(now, window=window, zone=zone)
                self._defer(plan, row, until=morning, reason=f"daily cap of {settings.daily_cap}")
        going.sort(key=lambda row: row.rank)
        self._batch(plan, going, gateway=gateway)
        return plan

    def _quiet_until(self, row: Any, *, now: datetime) -> datetime | None:
        window = self._settings.quiet_window(row.town_id)
        return quiet_until(now, window=window, zone=self._zone)

    @staticmethod
    def _defer(plan: Plan, row: Any, *, until: datetime, reason: str) -> None:
        if row.valid_until is not None and row.valid_until <= until:
            plan.expired[f"validity ends before the {reason} end"].append(row.id)
        else:
            plan.deferred[(until, reason)].append(row.id)

    def _batch(self, plan: Plan, rows: Sequence[Any], *, gateway: Gateway) -> None:
        """One text to at most ``batch_numbers`` distinct numbers per call, in claim order;
        a call's segments never exceed the bucket's burst, so one call always fits."""
        size = min(gateway.max_numbers, self._settings.batch_numbers)
        open_batches: dict[tuple[str, int], Batch] = {}
        for row in rows:
            fits = max(1, min(size, int(self._settings.burst_segments // max(row.segments, 1))))
            key = (row.text, row.segments)
            batch = open_batches.get(key)
            if batch is None or len(batch.messages) >= fits or row.phone in batch.messages:
                batch = Batch(
                    id=new_id(), gateway=gateway.name, text=row.text, segments=row.segments
                )
                open_batches[key] = batch
                plan.batches.append(batch)
            batch.messages[row.phone] = row.id
            batch.attempts = max(batch.attempts, row.attempts + 1)

    async def _record_plan(self, uow: UnitOfWork, plan: Plan, *, now: datetime) -> None:
        lease = now + timedelta(seconds=self._settings.lease_seconds)
        waiting = [MessageState.queued, MessageState.deferred]
        # The batches' ledger entries commit with the claim: a batch is never sending
        # without its entry, so a crash at any point is reconciled from the ledger.
        await self._ledger.claim_new(uow.session, [b.reference for b in plan.batches])
        if plan.batches:
            await repository.claim_batches(
                uow,
                {batch.id: list(batch.messages.values()) for batch in plan.batches},
                expect=waiting,
                gateway=plan.batches[0].gateway,
                lease_until=lease,
                now=now,
            )
        for (until, reason), ids in plan.deferred.items():
            await repository.change(
                uow,
                ids,
                expect=waiting,
                state=MessageState.deferred.value,
                next_attempt_at=until,
                error=reason,
                updated_at=now,
            )
        for reason, ids in plan.expired.items():
            await repository.change(
                uow,
                ids,
                expect=waiting,
                state=MessageState.expired.value,
                error=reason,
                updated_at=now,
            )

    # ---- 4. send ----

    async def _send_all(self, batches: list[Batch], *, now: datetime, claimed: bool) -> None:
        """Send the batches, a few calls at a time; ``claimed``: their ledger keys were
        claimed with the messages (fresh batches), else each is claimed (or reconciled)."""
        if not batches:
            return
        limit = asyncio.Semaphore(self._settings.parallel_calls)
        # A fresh claim's accepted batches are recorded together: one transaction for the
        # claim's answers rather than one per call.
        answered: list[tuple[Batch, Handed]] | None = [] if claimed else None

        async def one(batch: Batch) -> None:
            async with limit:
                await self._send(batch, now=now, claimed=claimed, answered=answered)

        try:
            await asyncio.gather(*(one(b) for b in batches))
        finally:
            if answered:
                await self._settle_all(answered, now=now, confirm=True)

    async def _send(
        self,
        batch: Batch,
        *,
        now: datetime,
        claimed: bool,
        answered: list[tuple[Batch, Handed]] | None = None,
    ) -> None:
        gateway = self.gateways.get(batch.gateway)
        if claimed:
            await self._call(batch, gateway, now=now, answered=answered)
            return
        try:
            claim = await self._ledger.claim(batch.reference)
        except EffectInProgress as exc:
            # Its previous worker's ledger lease still runs: ask again when it ends.
            await self._unknown(batch, now=now, after=exc.retry_after, reason="still being sent")
            return
        if claim.result is not None:
            await self._settle(batch, Handed.of_result(claim.result), now=now)
            return
        if claim.reconcile:
            await self._reconcile(batch, gateway, now=now)
            return
        await self._call(batch, gateway, now=now)

    async def _reconcile(self, batch: Batch, gateway: Gateway, *, now: datetime) -> None:
        try:
            known = await asyncio.wait_for(
                gateway.status(reference=batch.reference),
                timeout=self._settings.call_timeout_seconds,
            )
        except (GatewayError, TimeoutError, OSError) as exc:
            reason = f"status unknown: {exc}"
            await self._ledger.doubt(batch.reference, reason=reason)
            await self._unknown(batch, now=now, reason=reason)
            return
        if known is None:
            # The gateway never received it: nothing was sent, anyone may send it anew.
            await self._ledger.forget(batch.reference, reason=f"{gateway.name} never received it")
            await self._requeue(batch, now=now, at=now, reason=f"{gateway.name} never received it")
            return
        log.info("batch %s was handed to %s before its answer was lost", batch.id, gateway.name)
        await self._settle(batch, known, now=now, confirm=True)

    async def _call(
        self,
        batch: Batch,
        gateway: Gateway,
        *,
        now: datetime,
        answered: list[tuple[Batch, Handed]] | None = None,
    ) -> None:
        """Hand the batch over and record the answer (or, given ``answered``, add it there
        for the caller to record with others)."""
        await self._rate(gateway).acquire(batch.cost)
        started = time.monotonic()
        try:
            handed = await asyncio.wait_for(
                gateway.send(
                    reference=batch.reference, text=batch.text, numbers=list(batch.messages)
                ),
                timeout=self._settings.call_timeout_seconds,
            )
        except GatewayBusy as exc:
            await self._outcome(gateway, "busy", started, failed=True)
            await self._ledger.forget(batch.reference, reason=exc.reason)
            await self._busy(batch, now=now, reason=exc.reason, retry_after=exc.retry_after)
            return
        except GatewayRejected as exc:
            await self._outcome(gateway, "rejected", started, failed=False)
            await self._ledger.forget(batch.reference, reason=exc.reason)
            await self._fail(batch, list(batch.messages), now=now, reason=exc.reason)
            return
        except Exception as exc:
            # A timeout, a 5xx, a connection lost after sending: it may have been sent.
            reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
            await self._outcome(gateway, "uncertain", started, failed=True)
            await self._ledger.doubt(batch.reference, reason=reason)
            await self._unknown(batch, now=now, reason=reason)
            return
        await self._outcome(gateway, "handed", started, failed=False)
        if answered is not None:
            answered.append((batch, handed))
            return
        await self._settle(batch, handed, now=now, confirm=True)

    def _rate(self, gateway: Gateway) -> RateLimit:
        rate = self._rates.get(gateway.name)
        if rate is None:
            rate = RateLimit(
                self._runtime.kv,
                name=f"notify:{gateway.name}",
                per_second=self._settings.segments_per_second,
                burst=self._settings.burst_segments,
            )
            self._rates[gateway.name] = rate
        return rate

    async def _outcome(
        self, gateway: Gateway, outcome: str, started: float, *, failed: bool
    ) -> None:
        SMS_HANDED.labels(gateway.name, outcome).inc()
        await self.gateways.record(gateway.name, failed=failed, latency=time.monotonic() - started)

    # ---- recording outcomes ----

    async def _settle(
        self, batch: Batch, handed: Handed, *, now: datetime, confirm: bool = False
    ) -> None:
        """Record the gateway's answer; ``confirm``: with the ledger's confirmation, in the
        same transaction."""
        await self._settle_all([(batch, handed)], now=now, confirm=confirm)

    async def _settle_all(
        self, answers: list[tuple[Batch, Handed]], *, now: datetime, confirm: bool
    ) -> None:
        """Record the gateway's answers to several batches in one transaction (their ledger
        confirmations with them), then what each did not accept."""
        async with self._uow() as uow:
            await repository.flush_lazily(uow)
            sent: dict[uuid.UUID, str] = {}
            for batch, handed in answers:
                if confirm:
                    await self._ledger.confirm_in(uow.session, batch.reference, handed.as_result())
                sent.update(
                    (batch.messages[phone], pid)
                    for phone, pid in handed.accepted.items()
                    if phone in batch.messages
                )
            await repository.mark_sent(uow, sent=sent, now=now)
            await uow.commit()
        for batch, handed in answers:
            await self._unaccepted(batch, handed, now=now)

    async def _unaccepted(self, batch: Batch, handed: Handed, *, now: datetime) -> None:
        """What the gateway rejected fails; what it did not answer for goes back to the
        queue."""
        if handed.rejected:
            await self._fail(batch, list(handed.rejected), now=now, reasons=handed.rejected)
        answered = set(handed.accepted) | set(handed.rejected)
        silent = [p for p in batch.messages if p not in answered]
        if silent:
            # The gateway answered for the call and accepted none of these: not sent.
            await self._requeue(
                Batch(
                    id=batch.id,
                    gateway=batch.gateway,
                    text=batch.text,
                    segments=batch.segments,
                    messages={p: batch.messages[p] for p in silent},
                ),
                now=now,
                at=now,
                reason="not accepted by the gateway",
            )

    async def _fail(
        self,
        batch: Batch,
        phones: list[str],
        *,
        now: datetime,
        reason: str = "",
        reasons: dict[str, str] | None = None,
    ) -> None:
        async with self._uow() as uow:
            rows = await repository.in_batch(uow, batch_id=batch.id, phones=phones)
            why = {r.id: (reasons or {}).get(r.phone, reason)[:500] for r in rows}
            for text_, ids in _grouped(why).items():
                await repository.change(
                    uow,
                    ids,
                    expect=[MessageState.sending],
                    state=MessageState.failed.value,
                    error=text_,
                    lease_until=None,
                    updated_at=now,
                )
            emit_failed(uow, rows, reasons=why, at=now)
            await uow.commit()

    async def _busy(
        self, batch: Batch, *, now: datetime, reason: str, retry_after: float | None
    ) -> None:
        if batch.attempts >= self._settings.max_attempts:
            await self._fail(
                batch,
                list(batch.messages),
                now=now,
                reason=f"gave up after {batch.attempts} attempts: {reason}",
            )
            return
        at = retry_at(
            now,
            attempts=batch.attempts,
            base=self._settings.retry_base_seconds,
            cap=self._settings.retry_cap_seconds,
        )
        if retry_after is not None:
            at = max(at, now + timedelta(seconds=retry_after))
        await self._requeue(batch, now=now, at=at, reason=reason)

    async def _requeue(self, batch: Batch, *, now: datetime, at: datetime, reason: str) -> None:
        async with self._uow() as uow:
            await repository.change(
                uow,
                list(batch.messages.values()),
                expect=[MessageState.sending],
                state=MessageState.queued.value,
                batch_id=None,
                gateway=None,
                lease_until=None,
                next_attempt_at=at,
                error=reason[:500],
                updated_at=now,
            )
            await uow.commit()

    async def _unknown(
        self, batch: Batch, *, now: datetime, reason: str, after: float | None = None
    ) -> None:
        delay = after
        if delay is None:
            delay = (
                retry_at(
                    now,
                    attempts=batch.attempts,
                    base=self._settings.retry_base_seconds,
                    cap=self._settings.retry_cap_seconds,
                )
                - now
            ).total_seconds()
        async with self._uow() as uow:
            await repository.change(
                uow,
                list(batch.messages.values()),
                expect=[MessageState.sending],
                state=MessageState.unknown.value,
                lease_until=None,
                next_attempt_at=now + timedelta(seconds=delay),
                error=reason[:500],
                updated_at=now,
            )
            await uow.commit()

    # ---- gateway switches, metrics ----

    async def record_switch(self, switch: Switch) -> None:
        """A move to another gateway: a row, an event and a log line, with its reason."""
        log.warning(
            "SMS gateway switched from %s to %s: %s",
            switch.from_gateway,
            switch.to_gateway,
            switch.reason,
        )
        at = datetime.now(UTC)
        async with self._uow() as uow:
            uow.session.add(
                GatewaySwitch(
                    at=at,
                    from_gateway=switch.from_gateway,
                    to_gateway=switch.to_gateway,
                    reason=switch.reason[:500],
                    error_rate=switch.health.error_rate,
                    latency_ms=switch.health.latency_ms,
                )
            )
            uow.emit(
                GatewaySwitched(
                    from_gateway=switch.from_gateway,
                    to_gateway=switch.to_gateway,
                    reason=switch.reason,
                    error_rate=switch.health.error_rate,
                    latency_ms=switch.health.latency_ms,
                    at=at,
                )
            )
            await uow.commit()

    def _uow(self) -> UnitOfWork:
        return self._runtime.uow(PRINCIPAL)


async def _settled(sending: set["asyncio.Task[None]"], *, wait: str | None) -> None:
    """Wait for the first (or every) claim being sent, or none (``wait=None``), take those
    finished out of ``sending`` and raise what one of them raised."""
    if wait is not None and sending:
        await asyncio.wait(sending, return_when=wait)
    done = {task for task in sending if task.done()}
    sending -= done
    for task in done:
        task.result()


async def _stopped(sending: set["asyncio.Task[None]"]) -> None:
    """Stop the sends still under way (a stopping worker): their leases run out and the
    batches are reconciled, as after a crash."""
    for task in sending:
        task.cancel()
    await asyncio.gather(*sending, return_exceptions=True)
    sending.clear()


def _grouped(reasons: dict[uuid.UUID, str]) -> dict[str, list[uuid.UUID]]:
    grouped: dict[str, list[uuid.UUID]] = defaultdict(list)
    for message_id, reason in reasons.items():
        grouped[reason].append(message_id)
    return grouped


def outcome_of(row: Any, *, at: datetime, reason: str | None = None) -> MessageOutcome:
    return MessageOutcome(
        message_id=row.id,
        cause_kind=row.cause_kind,
        cause_id=row.cause_id,
        broadcast_id=row.broadcast_id,
        recipient_kind=row.recipient_kind,
        recipient_id=row.recipient_id,
        template_key=row.template_key,
        at=at,
        reason=reason,
    )


def emit_failed(
    uow: UnitOfWork, rows: Sequence[Any], *, reasons: dict[uuid.UUID, str], at: datetime
) -> None:
    """One ``notify.message.failed`` per town for these messages."""
    by_town: dict[uuid.UUID, list[MessageOutcome]] = defaultdict(list)
    for row in rows:
        by_town[row.town_id].append(outcome_of(row, at=at, reason=reasons.get(row.id)))
    for town_id, outcomes in by_town.items():
        uow.emit(MessagesFailed(town_id=town_id, messages=outcomes))


async def count_states(uow: UnitOfWork, _now: datetime) -> None:
    """Messages by state, for ``/metrics`` (a periodic job)."""
    rows = await uow.session.execute(select(Message.state, func.count()).group_by(Message.state))
    counts = dict.fromkeys((s.value for s in MessageState), 0)
    counts.update({state: int(n) for state, n in rows.all()})
    for state, count in counts.items():
        SMS_MESSAGES.labels(state).set(count)
