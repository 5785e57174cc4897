"""Cases' reads that the endpoints name: cases and the transfer queue by page, a case's
contacts."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select

from services.testing.models import Case, Contact, TransferStatus
from shared.pagination import fetch_page, where_given
from shared.uow import UnitOfWork

# Transfers still to be done: a case past its target in one of these is overdue.
OPEN_TRANSFERS = (TransferStatus.pending.value, TransferStatus.scheduled.value)


async def cases_page(
    uow: UnitOfWork,
    *,
    compound_id: uuid.UUID | None,
    building_id: uuid.UUID | None,
    round_id: uuid.UUID | None,
    resident_id: uuid.UUID | None,
    confirmed_since: datetime | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Any], str | None]:
    query = where_given(
        select(Case),
        (Case.compound_id, compound_id),
        (Case.building_id, building_id),
        (Case.round_id, round_id),
        (Case.resident_id, resident_id),
    )
    if confirmed_since is not None:
        query = query.where(Case.confirmed_at >= confirmed_since)
    return await fetch_page(uow.session, query, Case.id, cursor=cursor, limit=limit)


async def transfers_page(
    uow: UnitOfWork,
    *,
    status: str | None,
    overdue: bool | None,
    compound_id: uuid.UUID | None,
    now: datetime,
    cursor: str | None,
    limit: int,
) -> tuple[list[Any], str | None]:
    """The transfer queue; ``overdue`` keeps only the cases past their target and not yet
    transferred at ``now`` (``False``: all the others)."""
    query = where_given(
        select(Case), (Case.transfer_status, status), (Case.compound_id, compound_id)
    )
    if overdue is not None:
        late = Case.transfer_status.in_(OPEN_TRANSFERS) & (Case.transfer_due_at < now)
        query = query.where(late if overdue else ~late)
    return await fetch_page(uow.session, query, Case.id, cursor=cursor, limit=limit)


async def contacts_of(uow: UnitOfWork, case_id: uuid.UUID, *, kind: str | None) -> list[Contact]:
    query = where_given(select(Contact).where(Contact.case_id == case_id), (Contact.kind, kind))
    return list(await uow.session.scalars(query.order_by(Contact.kind, Contact.name)))
