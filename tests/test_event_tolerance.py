"""Producers strict, consumers tolerant: a producer that adds an optional field must not break
a consumer that does not know it yet, while our own producers cannot build an event with a
field its contract lacks."""

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from cordon.platform import Platform
from services.testing.models import DirectoryResident, DirectoryZone
from shared.auth import Principal
from shared.bus.transport import Outgoing
from shared.contracts.registry import ResidentRecord, ZoneChanged
from shared.contracts.testing import PoolPositive
from shared.events import Envelope, Event
from shared.ids import new_id
from tests.conftest import Town
from tests.notify_support import messages, notify_knows, resident
from tests.support import eventually, make_compound
from tests.test_zone_policy import case_in, deliver, the_zone


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


def test_a_producer_states_its_times_in_utc_and_cannot_leave_the_offset_out() -> None:
    """A lab's +08:00 leaves as Z; a time without an offset is the producer's bug, refused
    where it is made rather than guessed by every consumer."""
    fields = change(new_id(), str(new_id()), str(new_id())).model_dump()
    beijing = timezone(timedelta(hours=8))
    built = ZoneChanged.model_validate({**fields, "at": datetime(2022, 4, 2, 13, tzinfo=beijing)})
    assert built.model_dump(mode="json")["at"] == "2022-04-02T05:00:00Z"
    with pytest.raises(ValidationError, match="UTC offset"):
        ZoneChanged.model_validate({**fields, "at": datetime(2022, 4, 2, 5)})
    with pytest.raises(ValidationError, match="years 1 to 9999"):
        ZoneChanged.model_validate({**fields, "at": datetime(1, 1, 1, 5, tzinfo=beijing)})
    read = Envelope.from_bytes(_naive(built, at="2022-04-02T05:00:00").to_bytes()).event()
    assert isinstance(read, ZoneChanged) and read.at == datetime(2022, 4, 2, 5, tzinfo=UTC)


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


def _naive(event: Event, **times: str) -> Envelope:
    """The event as a producer that wrote its times without a UTC offset would send it."""
    payload = {**event.model_dump(mode="json"), **times}
    return Envelope(
        type=event.type,
        version=event.version,
        producer=event.type.split(".")[0],
        correlation_id=f"naive-{new_id()}",
        payload=payload,
    )


async def test_a_case_confirmed_at_a_time_without_an_offset_seals_its_unit_from_that_utc_time(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    """A naive time in a payload is UTC (the envelope's convention), read so by the kernel's
    contracts: the case seals its unit, its reason saying 05:00 UTC, rather than the
    consumer failing on it for ever (a naive time beside the zone's aware ones)."""
    compound = await make_compound(client, town.id, town.operator, code="P1")
    case = case_in(town, compound, unit_id=compound.unit_ids[1])
    assert await deliver(platform, _naive(case, confirmed_at="2022-04-02T05:00:00"))
    zone = await the_zone(client, compound, town.operator)
    assert (zone["unit_id"], zone["level"]) == (compound.unit_ids[1], "sealed")
    assert zone["reason"] == f"case {case.case_id} confirmed 2022-04-02 05:00 UTC"


@pytest.fixture
def process_clock_not_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time is not UTC (a server set to its region's clock): a naive
    time read as local would show it."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def test_a_positive_pool_at_a_time_without_an_offset_is_told_at_that_utc_time(
    process_clock_not_utc: None,
    client: httpx.AsyncClient,
    town: Town,
    platform: Platform,
    workers: None,
) -> None:
    """The notify rules read payloads field by field, by the same kernel type: a naive
    resulted_at is UTC whatever the process's clock, and the member reads 13:00 on the
    town's clock (UTC+8)."""
    compound = await make_compound(client, town.id, town.operator, code="P1")
    member = await resident(client, compound, town.operator, name="王秀英")
    await notify_knows(platform, 1)
    positive = PoolPositive(
        round_id=new_id(),
        tube_id=new_id(),
        tube_code="P0001",
        town_id=town.id,
        compound_id=uuid.UUID(compound.id),
        member_ids=[uuid.UUID(member["id"])],
        resulted_at=datetime.now(UTC),
    )
    event = _naive(positive, resulted_at="2022-04-02T05:00:00")
    await platform.transport.publish([Outgoing(str(event.id), event.type, event.to_bytes())])

    async def told() -> bool:
        return bool(await messages(platform, template_key="pool_positive"))

    await eventually(told, what="the pool's member told of the retest")
    [sent] = await messages(platform, template_key="pool_positive")
    assert sent.text.startswith("您4月2日 13:00的混采检测需要复核"), sent.text
