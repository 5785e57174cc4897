"""Who a row of testing data is about: the directory's name, phone and ID number of a
resident, in clear. The endpoint's presenter (shared/privacy.py) masks them as the caller
may see them: results, cases, contacts, tasks and antigen reports are health data."""

import uuid
from collections.abc import Iterable

from sqlalchemy import select

from services.testing.models import DirectoryResident
from shared.directory.tables import ResidentRow
from shared.uow import UnitOfWork

CHUNK = 5_000


def of(person: ResidentRow | None) -> dict[str, str | None]:
    """Name, phone and ID number of a directory resident (empty when not found)."""
    return {
        "name": person.name if person else None,
        "phone": person.phone if person else None,
        "document_number": person.document_number if person else None,
    }


async def residents(
    uow: UnitOfWork, resident_ids: Iterable[uuid.UUID | None]
) -> dict[uuid.UUID, ResidentRow]:
    """Directory entries of these residents, as far as the caller's scope shows them."""
    wanted = list({r for r in resident_ids if r is not None})
    found: dict[uuid.UUID, ResidentRow] = {}
    for n in range(0, len(wanted), CHUNK):
        query = select(DirectoryResident).where(DirectoryResident.id.in_(wanted[n : n + CHUNK]))
        found.update((r.id, r) for r in await uow.session.scalars(query))
    return found
