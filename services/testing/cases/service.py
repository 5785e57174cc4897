"""Cases: a resident confirmed positive, their contacts and their transfer.

A case is opened when a single tube or a retest comes back positive (results/service.py).
Its household becomes close contacts and, as the town's policy says, the other households of
its unit secondary contacts, each with a quarantine end; ``testing.case.confirmed`` carries
them to the registry (which seals the unit) and to whoever alerts. Each case then waits in
the transfer queue until it has left for isolation; a periodic job raises
``testing.transfer.overdue`` once per case that misses its target.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import case as when
from sqlalchemy import func, select, update

from services.testing import identity
from services.testing.cases import schemas
from services.testing.cases.repository import OPEN_TRANSFERS
from services.testing.models import (
    Case,
    Contact,
    DirectoryResident,
    Policy,
    TransferStatus,
)
from services.testing.policies.service import policy_for
from shared.auth import UNSCOPED
from shared.authz import MANAGERS, Place, policy
from shared.contracts.testing import CaseConfirmed, CaseSource, ContactRecord, TransferOverdue
from shared.db import table_of
from shared.directory.tables import ResidentRow
from shared.ids import new_id
from shared.phones import InvalidPhone, normalize_phone
from shared.problems import Conflict, Invalid
from shared.uow import UnitOfWork

# Contacts and transfers of a case are managed by those who manage the case's place.
CASES = policy("cases", "manage", *MANAGERS)
# Which transfer steps are allowed from each status.
TRANSITIONS = {
    TransferStatus.pending.value: frozenset({TransferStatus.scheduled.value}),
    TransferStatus.scheduled.value: frozenset(
        {
            TransferStatus.pending.value,
            TransferStatus.scheduled.value,
            TransferStatus.transferred.value,
        }
    ),
    TransferStatus.transferred.value: frozenset[str](),
}


@dataclass(frozen=True, slots=True)
class Positive:
    """A resident's positive tube, as the results upload found it."""

    resident_id: uuid.UUID
    household_id: uuid.UUID | None
    unit_id: uuid.UUID | None
    town_id: uuid.UUID
    compound_id: uuid.UUID
    building_id: uuid.UUID
    round_id: uuid.UUID
    tube_id: uuid.UUID
    tube_code: str
    source: CaseSource


async def confirm_cases(
    uow: UnitOfWork, *, positives: Sequence[Positive], now: datetime
) -> list[Case]:
    """Open a case per resident not confirmed before, with its generated contacts, and
    announce each. A resident is a case once: a later positive changes nothing."""
    known = await _cases_among(uow, [p.resident_id for p in positives])
    fresh: dict[uuid.UUID, Positive] = {}
    for positive in positives:
        if positive.resident_id not in known:
            fresh.setdefault(positive.resident_id, positive)
    if not fresh:
        return []
    policies = {town: await policy_for(uow, town) for town in {p.town_id for p in fresh.values()}}
    cases = [_case(p, policies[p.town_id], now) for p in fresh.values()]
    uow.session.add_all(cases)
    await uow.session.flush()
    contacts = await _generated_contacts(uow, cases, policies, now)
    if contacts:
        await uow.session.execute(table_of(Contact).insert(), contacts)
    for case in cases:
        _announce(uow, case, fresh[case.resident_id], contacts)
    return cases


async def _cases_among(uow: UnitOfWork, resident_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these residents are cases. A case may sit outside the caller's scope if the
    resident moved: looked for to refuse a second case or a contact, never shown."""
    cases = table_of(Case)
    query = select(cases.c.resident_id).where(cases.c.resident_id.in_(resident_ids))
    return set(await uow.session.scalars(query, execution_options=UNSCOPED))


def _case(positive: Positive, policy: Policy, now: datetime) -> Case:
    return Case(
        id=new_id(),
        resident_id=positive.resident_id,
        household_id=positive.household_id,
        unit_id=positive.unit_id,
        town_id=positive.town_id,
        compound_id=positive.compound_id,
        building_id=positive.building_id,
        round_id=positive.round_id,
        tube_id=positive.tube_id,
        source=positive.source,
        confirmed_at=now,
        transfer_status=TransferStatus.pending.value,
        transfer_due_at=now + timedelta(hours=policy.transfer_within_hours),
    )


def quarantine_end(policy: Policy, kind: str, now: datetime) -> date:
    days = policy.close_contact_days if kind == "close" else policy.secondary_contact_days
    return (now + timedelta(days=days)).date()


async def _generated_contacts(
    uow: UnitOfWork,
    cases: Sequence[Case],
    policies: dict[uuid.UUID, Policy],
    now: datetime,
) -> list[dict[str, object]]:
    """Household members as close contacts and, where the policy says so, the other
    households of the unit as secondary contacts; people who are cases themselves are not
    anyone's contact."""
    households = {c.household_id for c in cases if c.household_id is not None}
    units = {
        c.unit_id
        for c in cases
        if c.unit_id is not None and policies[c.town_id].unit_neighbours_are_secondary
    }
    query = select(DirectoryResident).where(
        DirectoryResident.household_id.in_(households) | DirectoryResident.unit_id.in_(units)
    )
    found = list(await uow.session.scalars(query))
    already = await _cases_among(uow, [r.id for r in found])
    neighbours = [r for r in found if r.id not in already]
    rows: list[dict[str, object]] = []
    for case in cases:
        policy = policies[case.town_id]
        for person in neighbours:
            if person.household_id == case.household_id:
                kind, source = "close", "household"
            elif case.unit_id in units and person.unit_id == case.unit_id:
                kind, source = "secondary", "unit"
            else:
                continue
            rows.append(
                _contact_row(
                    case,
                    resident_id=person.id,
                    name=person.name,
                    phone=person.phone,
                    kind=kind,
                    source=source,
                    quarantine_until=quarantine_end(policy, kind, now),
                    note="",
                    created_by="testing",
                    now=now,
                )
            )
    return rows


def _contact_row(
    case: Case,
    *,
    resident_id: uuid.UUID | None,
    name: str,
    phone: str | None,
    kind: str,
    source: str,
    quarantine_until: date,
    note: str,
    created_by: str,
    now: datetime,
) -> dict[str, object]:
    # Contacts are placed at their case: the case's committee runs the tracing.
    return {
        "id": new_id(),
        "case_id": case.id,
        "town_id": case.town_id,
        "compound_id": case.compound_id,
        "building_id": case.building_id,
        "resident_id": resident_id,
        "name": name,
        "phone": phone,
        "kind": kind,
        "source": source,
        "quarantine_until": quarantine_until,
        "note": note,
        "created_by": created_by,
        "created_at": now,
    }


def _announce(
    uow: UnitOfWork, case: Case, positive: Positive, contacts: Sequence[dict[str, object]]
) -> None:
    records = [
        ContactRecord.model_validate({k: c[k] for k in ("resident_id", "kind", "quarantine_until")})
        for c in contacts
        if c["case_id"] == case.id
    ]
    uow.emit(
        CaseConfirmed(
            case_id=case.id,
            resident_id=case.resident_id,
            household_id=case.household_id,
            town_id=case.town_id,
            compound_id=positive.compound_id,
            building_id=positive.building_id,
            unit_id=case.unit_id,
            round_id=case.round_id,
            tube_code=positive.tube_code,
            source=positive.source,
            confirmed_at=case.confirmed_at,
            contacts=records,
        ),
        compound_id=positive.compound_id,
    )


async def get_case(uow: UnitOfWork, case_id: uuid.UUID) -> Case:
    return await uow.get(Case, case_id, what="case")


async def add_contact(uow: UnitOfWork, *, case_id: uuid.UUID, data: schemas.ContactIn) -> Contact:
    """A contact found by tracing: a resident of the directory (in the caller's scope) or
    an outsider by name and phone. A resident, or an outsider by the same name and phone,
    already listed answers 409; a quarantine ending before the case was confirmed, 422."""
    case = await get_case(uow, case_id)
    CASES.check(uow, Place.of(case))
    now = datetime.now(UTC)
    policy = await policy_for(uow, case.town_id)
    if data.resident_id is not None:
        person = await uow.get(
            DirectoryResident, data.resident_id, what="resident", field="resident_id"
        )
        if person.id == case.resident_id:
            message = "a case is not their own contact"
            raise Invalid(message, errors=[{"field": "resident_id", "message": message}])
        listed = await uow.session.scalar(
            select(Contact.id).where(Contact.case_id == case.id, Contact.resident_id == person.id)
        )
        if listed is not None:
            raise Conflict(f"resident {person.id} is already a contact of this case")
        name, phone = person.name, person.phone
    else:
        assert data.name is not None
        name, phone = data.name, _phone(data.phone)
        # The same outsider traced twice (same name and phone) is one contact.
        listed = await uow.session.scalar(
            select(Contact.id).where(
                Contact.case_id == case.id,
                Contact.resident_id.is_(None),
                Contact.name == name,
                Contact.phone == phone,
            )
        )
        if phone is not None and listed is not None:
            raise Conflict.on("phone", f"{name} with this phone is already a contact of this case")
    if data.quarantine_until is not None and data.quarantine_until < case.confirmed_at.date():
        raise Invalid.on(
            "quarantine_until",
            f"quarantine_until {data.quarantine_until} is before the case was confirmed "
            f"({case.confirmed_at.date()})",
        )
    row = _contact_row(
        case,
        resident_id=data.resident_id,
        name=name,
        phone=phone,
        kind=data.kind,
        source="manual",
        quarantine_until=data.quarantine_until or quarantine_end(policy, data.kind, now),
        note=data.note,
        created_by=uow.principal.username,
        now=now,
    )
    contact = Contact(**row)
    uow.session.add(contact)
    await uow.session.flush()
    return contact


def _phone(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return normalize_phone(value)
    except InvalidPhone as exc:
        raise Invalid(str(exc), errors=[{"field": "phone", "message": str(exc)}]) from None


async def move_transfer(uow: UnitOfWork, *, case_id: uuid.UUID, data: schemas.TransferIn) -> Case:
    """One step of the transfer queue; a step the queue does not allow answers 409."""
    case = await get_case(uow, case_id)
    CASES.check(uow, Place.of(case))
    if data.status not in TRANSITIONS[case.transfer_status]:
        raise Conflict(
            f"a {case.transfer_status} transfer cannot become {data.status}"
            + ("; schedule it first" if data.status == "transferred" else ""),
            errors=[{"field": "status", "message": f"not allowed from {case.transfer_status}"}],
        )
    case.transfer_status = data.status
    if data.status == TransferStatus.scheduled.value:
        case.transfer_destination = data.destination
        case.transfer_scheduled_for = data.scheduled_for
    elif data.status == TransferStatus.pending.value:
        case.transfer_destination = case.transfer_scheduled_for = None
    else:
        case.transferred_at = datetime.now(UTC)
    await uow.session.flush()
    return case


async def report_overdue_transfers(uow: UnitOfWork, now: datetime) -> None:
    """Raise ``testing.transfer.overdue`` once per case past its target and not transferred.
    The mark and the event commit together, and a second replica's UPDATE skips the rows the
    first one marked, so each case is reported once."""
    cases = table_of(Case)
    marked = await uow.session.execute(
        update(cases)
        .where(
            cases.c.transfer_status.in_(OPEN_TRANSFERS),
            cases.c.transfer_due_at < now,
            cases.c.overdue_reported_at.is_(None),
        )
        .values(overdue_reported_at=now)
        .returning(
            cases.c.id,
            cases.c.resident_id,
            cases.c.town_id,
            cases.c.compound_id,
            cases.c.transfer_due_at,
            cases.c.transfer_status,
        )
    )
    for row in marked.all():
        uow.emit(
            TransferOverdue(
                case_id=row.id,
                resident_id=row.resident_id,
                town_id=row.town_id,
                compound_id=row.compound_id,
                due_at=row.transfer_due_at,
                status=row.transfer_status,
            ),
            compound_id=row.compound_id,
        )


def present(case: Case, person: ResidentRow | None, now: datetime) -> schemas.CaseOut:
    return schemas.CaseOut(
        id=case.id,
        resident_id=case.resident_id,
        **identity.of(person),
        household_id=case.household_id,
        town_id=case.town_id,
        compound_id=case.compound_id,
        building_id=case.building_id,
        unit_id=case.unit_id,
        round_id=case.round_id,
        tube_id=case.tube_id,
        source=case.source,
        confirmed_at=case.confirmed_at,
        transfer=schemas.TransferOut(
            status=case.transfer_status,
            due_at=case.transfer_due_at,
            overdue=case.transfer_status in OPEN_TRANSFERS and case.transfer_due_at < now,
            scheduled_for=case.transfer_scheduled_for,
            destination=case.transfer_destination,
            transferred_at=case.transferred_at,
            overdue_reported_at=case.overdue_reported_at,
        ),
    )


async def present_all(uow: UnitOfWork, cases: Sequence[Case]) -> list[schemas.CaseOut]:
    """Cases with who they are about, in clear (the endpoint's presenter masks them)."""
    people = await identity.residents(uow, [c.resident_id for c in cases])
    now = datetime.now(UTC)
    return [present(c, people.get(c.resident_id), now) for c in cases]


async def present_contacts(
    uow: UnitOfWork, contacts: Sequence[Contact]
) -> list[schemas.ContactOut]:
    """Contacts in clear (the endpoint's presenter masks them)."""
    people = await identity.residents(uow, [c.resident_id for c in contacts])
    out = []
    for contact in contacts:
        person = people.get(contact.resident_id) if contact.resident_id else None
        out.append(
            schemas.ContactOut(
                id=contact.id,
                case_id=contact.case_id,
                resident_id=contact.resident_id,
                name=contact.name,
                phone=contact.phone,
                document_number=person.document_number if person else None,
                kind=contact.kind,
                source=contact.source,
                quarantine_until=contact.quarantine_until,
                note=contact.note,
                created_by=contact.created_by,
                created_at=contact.created_at,
            )
        )
    return out


async def counts(
    uow: UnitOfWork, *, since: datetime, now: datetime, compound_id: uuid.UUID | None
) -> list[schemas.CaseCounts]:
    """Cases and the transfer queue per compound in one grouped query: the dashboard reads
    every compound's figures at once instead of paging through each list."""
    open_transfer = Case.transfer_status.in_(OPEN_TRANSFERS)
    query = (
        select(
            Case.compound_id,
            func.count().label("cases"),
            func.count(when((Case.confirmed_at >= since, 1))).label("cases_since"),
            func.count(when((Case.transfer_status == TransferStatus.pending.value, 1))).label(
                "transfers_pending"
            ),
            func.count(when((Case.transfer_status == TransferStatus.scheduled.value, 1))).label(
                "transfers_scheduled"
            ),
            func.count(when((open_transfer & (Case.transfer_due_at < now), 1))).label(
                "transfers_overdue"
            ),
        )
        .group_by(Case.compound_id)
        .order_by(Case.compound_id)
    )
    if compound_id is not None:
        query = query.where(Case.compound_id == compound_id)
    rows = (await uow.session.execute(query)).mappings().all()
    return [schemas.CaseCounts.model_validate(dict(row)) for row in rows]
