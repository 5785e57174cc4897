"""Registry events into the directory. Unknown registry event types are ignored: the
registry may publish more than the testing service needs."""

from services.testing.directory import service
from shared.contracts import registry
from shared.events import Envelope
from shared.uow import UnitOfWork

BINDINGS = ("registry.#",)


async def on_registry(uow: UnitOfWork, envelope: Envelope) -> None:
    match envelope.event():
        case registry.PlaceRegistered(place=place):
            await service.apply_places(uow, places=[place])
        case registry.PlacesSnapshot(places=places):
            await service.apply_places(uow, places=places)
        case (
            registry.ResidentRegistered(resident=resident)
            | registry.ResidentUpdated(resident=resident)
        ):
            await service.apply_residents(uow, residents=[resident])
        case (
            registry.ResidentsImported(residents=residents)
            | registry.ResidentsSnapshot(residents=residents)
        ):
            await service.apply_residents(uow, residents=residents)
        case registry.ZoneChanged() as change:
            await service.apply_zone(uow, change=change)
        case registry.SnapshotStarted():
            # The snapshot's zones follow; zones lifted meanwhile must not linger.
            await service.forget_zones(uow)
        case registry.ZonesSnapshot(zones=zones):
            for change in zones:
                await service.apply_zone(uow, change=change)
        case _:
            return
