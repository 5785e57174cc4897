"""Who a row of testing data is about, shown as the caller may see it.

Results, cases, contacts and antigen reports are health data: names are masked with the
numbers unless the caller reveals them (roles that may see health data), and volunteers see
no identity at all. Other lists (tasks, door-to-door) show names and mask the numbers as
the registry does. Every unmasked read is written to the access log.
"""

import uuid
from collections.abc import Iterable

from sqlalchemy import select

from services.testing.models import DirectoryResident, kernel
from shared.auth import Role
from shared.directory.tables import ResidentRow
from shared.privacy import (
    PersonalField,
    log_access,
    mask_id_number,
    mask_name,
    mask_phone,
    revealed_fields,
)
from shared.uow import UnitOfWork

CHUNK = 5_000


class Masking:
    def __init__(self, uow: UnitOfWork, *, reveal: bool, health: bool) -> None:
        self.shown = revealed_fields(uow, reveal=reveal, health=health)
        self.hidden = health and uow.principal.role is Role.volunteer
        self.mask_names = health and PersonalField.health not in self.shown

    def name(self, value: str | None) -> str | None:
        if self.hidden:
            return None
        return mask_name(value) if self.mask_names else value

    def phone(self, value: str | None) -> str | None:
        if self.hidden:
            return None
        return value if PersonalField.phone in self.shown else mask_phone(value)

    def document(self, value: str | None) -> str | None:
        if self.hidden:
            return None
        return value if PersonalField.id_number in self.shown else mask_id_number(value)

    def identity(self, person: ResidentRow | None) -> dict[str, str | None]:
        """Name, phone and ID number of a directory resident (empty when not found)."""
        return {
            "name": self.name(person.name if person else None),
            "phone": self.phone(person.phone if person else None),
            "document_number": self.document(person.document_number if person else None),
        }

    async def log(
        self, uow: UnitOfWork, *, resource: str, record_ids: Iterable[object], endpoint: str
    ) -> None:
        if self.shown:
            await log_access(
                uow,
                kernel.access_log,
                resource=resource,
                record_ids=record_ids,
                fields=self.shown,
                endpoint=endpoint,
            )


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
