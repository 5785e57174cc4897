"""The stock ledger's invariants over random ledgers, on both backends: receipts (some
already expired), reservations, releases, issues and adjustments in any order. After every
operation each batch's on-hand equals the sum of its stock card, its reserved quantity the sum
of what reservations hold, and neither goes negative nor reserved above on hand. Each
operation succeeds exactly when the state before allowed it; a refused one says by how much
and changes nothing."""

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from cordon.platform import Platform
from services.logistics.items.schemas import ItemCreate
from services.logistics.items.service import create_item
from services.logistics.models import MILLI, Batch, Entry, Reservation
from services.logistics.reservations.service import Reference, issue_reserved, release, reserve
from services.logistics.stock import schemas
from services.logistics.stock.service import adjust, receive
from shared.auth import Principal
from shared.problems import Conflict
from shared.uow import UnitOfWork
from tests.conftest import Town
from tests.test_logistics_stock import known_to_logistics, on_the_town_s_calendar

# Half units: 0.5 kg steps exercise the thousandths.
amounts = st.integers(min_value=1, max_value=80).map(lambda n: Decimal(n) / 2)
references = st.integers(min_value=0, max_value=2)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("receive"), amounts, st.sampled_from([-1, None, 3, 30])),
        st.tuples(st.just("reserve"), references, amounts),
        st.tuples(st.just("release"), references, st.none() | amounts),
        st.tuples(st.just("issue"), references, st.none() | amounts),
        st.tuples(st.just("adjust"), st.integers(min_value=0, max_value=5), amounts, st.booleans()),
    ),
    min_size=1,
    max_size=18,
)


@dataclass(frozen=True)
class Balance:
    id: uuid.UUID
    expires_on: date | None
    on_hand: int
    reserved: int


@dataclass
class State:
    """What the database holds for the item, read after each operation."""

    batches: dict[uuid.UUID, Balance]
    card: dict[uuid.UUID, int]
    held: dict[uuid.UUID, dict[uuid.UUID, int]]  # reference → batch → held

    def available(self, today: date) -> int:
        return sum(
            b.on_hand - b.reserved
            for b in self.batches.values()
            if b.expires_on is None or b.expires_on >= today
        )

    def holds(self, reference: uuid.UUID) -> int:
        return sum(self.held.get(reference, {}).values())

    def totals(self) -> tuple[int, int]:
        return (
            sum(b.on_hand for b in self.batches.values()),
            sum(b.reserved for b in self.batches.values()),
        )


async def read(uow: UnitOfWork, item_id: uuid.UUID) -> State:
    found = await uow.session.scalars(select(Batch).where(Batch.item_id == item_id))
    batches = {b.id: Balance(b.id, b.expires_on, b.on_hand, b.reserved) for b in found}
    card = dict(
        (
            await uow.session.execute(
                select(Entry.batch_id, func.sum(Entry.quantity))
                .where(Entry.item_id == item_id)
                .group_by(Entry.batch_id)
            )
        ).all()
    )
    held: dict[uuid.UUID, dict[uuid.UUID, int]] = {}
    for r in await uow.session.scalars(select(Reservation).where(Reservation.item_id == item_id)):
        by_batch = held.setdefault(r.reference_id, {})
        by_batch[r.batch_id] = by_batch.get(r.batch_id, 0) + r.held
    return State(batches, {k: int(v) for k, v in card.items()}, held)


def check_invariants(state: State) -> None:
    for batch in state.batches.values():
        assert batch.on_hand == state.card.get(batch.id, 0), "on hand differs from the card"
        held = sum(by_batch.get(batch.id, 0) for by_batch in state.held.values())
        assert batch.reserved == held, "reserved differs from what reservations hold"
        assert 0 <= batch.reserved <= batch.on_hand, "a balance went negative"


class Ledger:
    def __init__(self, platform: Platform, holder_id: uuid.UUID, item_id: uuid.UUID) -> None:
        self.runtime = platform.runtime("logistics")
        self.holder_id, self.item_id = holder_id, item_id
        self.references = [uuid.uuid4() for _ in range(3)]

    def today(self) -> date:
        """The town office's date: expiry dates are on its calendar."""
        return datetime.now(self.runtime.settings.zone).date()

    async def state(self) -> State:
        async with self.runtime.uow(Principal.system()) as uow:
            return await read(uow, self.item_id)

    async def run(self, operation: tuple[Any, ...], before: State) -> str | None:
        """Apply one operation in its own unit of work; the refusal's message, if refused."""
        async with self.runtime.uow(Principal.system()) as uow:
            try:
                await self._apply(uow, operation, before)
            except Conflict as exc:
                return exc.detail
            await uow.commit()
        return None

    async def _apply(self, uow: UnitOfWork, operation: tuple[Any, ...], before: State) -> None:
        kind, *args = operation
        line = [(self.item_id, args[-1])] if kind != "adjust" and args[-1] is not None else None
        match kind:
            case "receive":
                quantity, days = args
                # Expiry dates are the town office's calendar's.
                expires = None if days is None else self.today() + timedelta(days)
                # A batch expired by now was received before it expired (a receipt takes in
                # nothing expired on the town's date): three days ago.
                back = 3 if days is not None and days < 0 else 0
                data = schemas.ReceiptCreate(
                    holder_id=self.holder_id,
                    source="purchase",
                    received_at=datetime.now(UTC) - timedelta(days=back) if back else None,
                    lines=[{"item_id": self.item_id, "quantity": quantity, "expires_on": expires}],
                )
                with on_the_town_s_calendar(self.today() - timedelta(days=back)):
                    await receive(uow, data=data)
            case "reserve":
                reference = Reference(kind="plan", id=self.references[args[0]])
                lines = [(self.item_id, args[1])]
                await reserve(uow, holder_id=self.holder_id, lines=lines, reference=reference)
            case "release":
                reference = Reference(kind="plan", id=self.references[args[0]])
                await release(uow, holder_id=self.holder_id, lines=line, reference=reference)
            case "issue":
                reference = Reference(kind="plan", id=self.references[args[0]])
                await issue_reserved(uow, holder_id=self.holder_id, lines=line, reference=reference)
            case "adjust":
                index, quantity, found = args
                batch_ids = sorted(before.batches)
                if not batch_ids:
                    return
                change = quantity if found else -quantity
                adjustment = schemas.AdjustmentCreate(
                    holder_id=self.holder_id,
                    lines=[
                        {
                            "batch_id": batch_ids[index % len(batch_ids)],
                            "quantity": change,
                            "reason": "found" if found else "lost",
                        }
                    ],
                )
                await adjust(uow, data=adjustment)


def expected_refusal(operation: tuple[Any, ...], before: State, ledger: Ledger) -> bool:
    kind, *args = operation
    today = ledger.today()
    match kind:
        case "reserve":
            return int(args[1] * MILLI) > before.available(today)
        case "release" | "issue":
            asked = args[1]
            return asked is not None and int(asked * MILLI) > before.holds(
                ledger.references[args[0]]
            )
        case "adjust":
            index, quantity, found = args
            if found or not before.batches:
                return False
            batch = before.batches[sorted(before.batches)[index % len(before.batches)]]
            return int(quantity * MILLI) > batch.on_hand - batch.reserved
    return False


def expected_totals(operation: tuple[Any, ...], before: State, ledger: Ledger) -> tuple[int, int]:
    """On hand and reserved after a successful operation."""
    on_hand, reserved = before.totals()
    kind, *args = operation
    match kind:
        case "receive":
            return on_hand + int(args[0] * MILLI), reserved
        case "reserve":
            return on_hand, reserved + int(args[1] * MILLI)
        case "release" | "issue":
            held = before.holds(ledger.references[args[0]])
            taken = held if args[1] is None else int(args[1] * MILLI)
            return (on_hand - taken if kind == "issue" else on_hand), reserved - taken
        case "adjust":
            if not before.batches:
                return on_hand, reserved
            change = int(args[1] * MILLI) * (1 if args[2] else -1)
            return on_hand + change, reserved
    raise AssertionError(kind)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ledger_operations=operations)
async def test_random_ledgers_never_go_negative_and_balance_is_the_card(
    platform: Platform,
    town: Town,
    client: httpx.AsyncClient,
    workers: None,
    ledger_operations: list[Any],
) -> None:
    await known_to_logistics(platform, town.id)
    async with platform.runtime("logistics").uow(Principal.system()) as uow:
        made = await create_item(
            uow,
            data=ItemCreate(town_id=town.id, name=f"rice {uuid.uuid4().hex[:8]}", unit="kg"),
        )
        await uow.commit()
    ledger = Ledger(platform, town.id, made.id)
    for operation in ledger_operations:
        before = await ledger.state()
        refusal = await ledger.run(operation, before)
        after = await ledger.state()
        check_invariants(after)
        assert (refusal is not None) == expected_refusal(operation, before, ledger), (
            operation,
            refusal,
        )
        if refusal is None:
            assert after.totals() == expected_totals(operation, before, ledger), operation
        else:
            assert after.totals() == before.totals(), "a refused operation changed the stock"
            if operation[0] == "reserve":
                short = (
                    Decimal(int(operation[2] * MILLI) - before.available(ledger.today())) / MILLI
                )
                assert f"short by {short.normalize():f} kg" in refusal, refusal
