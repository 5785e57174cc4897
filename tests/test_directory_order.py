"""The testing directory applies registry events in the registry's order, whatever order the
bus delivers them in: a retried event older than what the directory holds is counted and
dropped, on RabbitMQ and in the embedded mode."""

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from cordon.platform import Platform
from cordon.services import ALL
from services.testing.models import DirectoryZone
from shared.auth import Principal
from shared.events import Envelope
from shared.service import Consumer, ServiceSpec
from shared.settings import Settings
from shared.uow import UnitOfWork
from tests.conftest import Town, started
from tests.support import eventually, make_compound, post


class FailFirstSeal:
    """The directory's handler, failing once on the first sealed zone it is handed (a
    transient error: the bus retries it later)."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self.failed = asyncio.Event()
        self.seals = 0

    async def __call__(self, uow: UnitOfWork, envelope: Envelope) -> None:
        if envelope.type == "registry.zone.changed" and envelope.payload["to_level"] == "sealed":
            self.seals += 1
            if self.seals == 1:
                self.failed.set()
                raise RuntimeError("the database hiccuped (test)")
        await self.consumer.handle(uow, envelope)


@pytest.fixture
def flaky() -> FailFirstSeal:
    [testing] = [spec for spec in ALL if spec.name == "testing"]
    [directory] = testing.consumers
    return FailFirstSeal(directory)


@pytest.fixture
async def platform(settings: Settings, flaky: FailFirstSeal) -> AsyncIterator[Platform]:
    """The whole system, with the flaky directory and retries slow enough that the lift
    overtakes the retried seal."""
    specs: list[ServiceSpec] = []
    for spec in ALL:
        if spec.name == "testing":
            directory = dataclasses.replace(flaky.consumer, handle=flaky)
            spec = dataclasses.replace(spec, consumers=(directory,))
        specs.append(spec)
    slow_retries = settings.model_copy(update={"retry_base_seconds": 1.5})
    async with started(slow_retries, specs) as platform:
        yield platform


def stale(table: str) -> float:
    labels = {"service": "testing", "projection": "directory", "table": table}
    return REGISTRY.get_sample_value("cordon_projection_stale_total", labels) or 0.0


async def directory_zones(platform: Platform) -> list[tuple[str | None, int]]:
    runtime = platform.runtime("testing")
    async with runtime.uow(Principal.system()) as uow:
        rows = await uow.session.execute(select(DirectoryZone.level, DirectoryZone.position))
        return [(level, position) for level, position in rows]


async def test_a_seal_retried_after_its_lift_leaves_no_zone(
    client: httpx.AsyncClient,
    town: Town,
    platform: Platform,
    flaky: FailFirstSeal,
    workers: None,
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    area = {"building_id": compound.building_id, "reason": "case in unit 1"}
    await post(client, "/v1/zones", {**area, "level": "sealed"}, town.operator)
    await asyncio.wait_for(flaky.failed.wait(), timeout=30)
    dropped_before = stale("directory_zones")

    # The seal waits in a retry queue; the lift is delivered meanwhile.
    await post(
        client, "/v1/zones", {**area, "level": None, "reason": "tested negative"}, town.operator
    )

    async def seal_retried() -> bool:
        return flaky.seals >= 2 and stale("directory_zones") > dropped_before

    await eventually(seal_retried, within=30, what="the seal's retry to be dropped")
    registry_zones = await client.get(f"/v1/zones?compound_id={compound.id}", headers=town.operator)
    assert registry_zones.json()["items"] == []
    # The directory holds the lift (an empty level), not the seal that came after it.
    [(level, position)] = await directory_zones(platform)
    assert level is None and position > 0


async def test_older_resident_records_arriving_late_do_not_overwrite_newer_ones(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    """The same resident in a registration, an update and an import batch, delivered newest
    first: the directory keeps the newest; each older record is counted as stale."""
    from services.testing.models import DirectoryResident
    from shared.contracts.registry import ResidentRecord, ResidentRegistered, ResidentUpdated
    from shared.ids import new_id

    compound = await make_compound(client, town.id, town.operator, code="P1")
    record = ResidentRecord(
        id=new_id(),
        household_id=new_id(),
        town_id=town.id,
        compound_id=uuid.UUID(compound.id),
        building_id=uuid.UUID(compound.building_id),
        unit_id=None,
        name="王秀英",
        document_number="110101194102030021",
        phone="13800000001",
        birth_date=None,
        tags=[],
    )
    registered = ResidentRegistered(resident=record)
    moved_phone = ResidentUpdated(resident=record.model_copy(update={"phone": "13800000002"}))
    newest = ResidentUpdated(resident=record.model_copy(update={"phone": "13800000003"}))
    runtime = platform.runtime("testing")
    [consumer] = runtime.spec.consumers
    queue = runtime.subscription(consumer).queue
    before = stale("directory_residents")
    for position, event in ((30, newest), (10, registered), (20, moved_phone)):
        envelope = Envelope.wrap(event, producer="registry", correlation_id="test")
        await runtime.process(
            consumer, envelope.model_copy(update={"position": position}), queue=queue
        )

    async with runtime.uow(Principal.system()) as uow:
        person = await uow.session.get(DirectoryResident, record.id)
        assert person is not None
        assert (person.phone, person.position) == ("13800000003", 30)
    assert stale("directory_residents") - before == 2
