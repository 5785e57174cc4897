"""Producers strict, consumers tolerant: a producer that adds an optional field must not break
a consumer that does not know it yet, while our own producers cannot build an event with a
field its contract lacks."""

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from cordon.platform import Platform
from services.testing.models import DirectoryResident, DirectoryZone
from shared.auth import Principal
from shared.contracts.registry import ResidentRecord, ZoneChanged
from shared.events import Envelope
from shared.ids import new_id
from tests.conftest import Town
from tests.support import make_compound


def change(town_id: uuid.UUID, building_id: str, compound_id: str) -> ZoneChanged:
    return ZoneChanged(
        town_id=town_id,
        compound_id=uuid.UUID(compound_id),
        building_id=uuid.UUID(building_id),
        unit_id=None,
        from_level=None,
        to_level="sealed",
        reason="case",
        set_by="operator",
        at=datetime.now(UTC),
    )


def test_a_producer_cannot_build_an_event_or_record_with_an_unknown_field() -> None:
    fields = change(new_id(), str(new_id()), str(new_id())).model_dump()
    with pytest.raises(ValidationError, match="colour"):
        ZoneChanged.model_validate({**fields, "colour": "red"})
    with pytest.raises(ValidationError, match="nickname"):
        ResidentRecord(  # type: ignore[call-arg]
            id=new_id(),
            household_id=new_id(),
            town_id=new_id(),
            compound_id=new_id(),
            building_id=new_id(),
            unit_id=None,
            name="王秀英",
            document_number="110101194102030021",
            phone=None,
            birth_date=None,
            tags=[],
            nickname="Auntie Wang",
        )


async def test_a_consumer_applies_an_event_with_fields_it_does_not_know(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    newer = change(town.id, compound.building_id, compound.id).model_dump(mode="json")
    newer["severity"] = "high"  # a field a newer registry added
    resident = {
        "id": str(new_id()),
        "household_id": str(new_id()),
        "town_id": str(town.id),
        "compound_id": compound.id,
        "building_id": compound.building_id,
        "unit_id": None,
        "name": "王秀英",
        "document_number": "110101194102030021",
        "phone": None,
        "birth_date": None,
        "tags": ["elderly"],
        "languages": ["wu"],  # in a nested record too
    }
    runtime = platform.runtime("testing")
    [consumer] = runtime.spec.consumers
    queue = runtime.subscription(consumer).queue
    for position, (event_type, payload) in enumerate(
        [
            ("registry.zone.changed", newer),
            ("registry.resident.registered", {"resident": resident, "channel": "api"}),
        ],
        start=1,
    ):
        envelope = Envelope(
            type=event_type,
            version=1,
            producer="registry",
            correlation_id="newer-producer",
            payload=payload,
            position=position,
        )
        assert await runtime.process(consumer, envelope, queue=queue)

    async with runtime.uow(Principal.system()) as uow:
        levels = list(await uow.session.scalars(select(DirectoryZone.level)))
        person = await uow.session.get(DirectoryResident, uuid.UUID(resident["id"]))
        assert levels == ["sealed"]
        assert person is not None and person.tags == ["elderly"]
