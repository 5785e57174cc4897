"""The logistics service as the kernel sees it."""

from pathlib import Path

from services.logistics.disinfection.endpoints import router as disinfection_router
from services.logistics.disinfection.service import follow_zones, on_case_confirmed, run_job
from services.logistics.donations.endpoints import router as donations_router
from services.logistics.items.endpoints import router as items_router
from services.logistics.models import SERVICE, Base, directory, kernel
from services.logistics.stock.endpoints import router as stock_router
from services.logistics.transfers.endpoints import router as transfers_router
from shared.contracts.testing import CaseConfirmed
from shared.events import Envelope
from shared.service import Consumer, Periodic, ServiceSpec
from shared.uow import UnitOfWork


async def _case_confirmed(uow: UnitOfWork, envelope: Envelope) -> None:
    event = envelope.event()
    if isinstance(event, CaseConfirmed):
        await on_case_confirmed(uow, event)


# A confirmed case's stairwell gets a disinfection schedule and a task at once.
DISINFECTION_CASES = Consumer("disinfection-cases", ("testing.case.confirmed",), _case_confirmed)
# Each town day's disinfection tasks, and slots passed without completion.
DISINFECTION_TASKS = Periodic("disinfection-tasks", 60, run_job)

SPEC = ServiceSpec(
    name=SERVICE,
    metadata=Base.metadata,
    kernel=kernel,
    migrations=Path(__file__).parent / "migrations",
    routers=(items_router, stock_router, transfers_router, donations_router, disinfection_router),
    resources=(
        "items",
        "kits",
        "stock",
        "donations",
        "disinfection-defaults",
        "disinfection-schedules",
        "disinfection-tasks",
    ),
    # Disinfection schedules follow the zones the directory holds.
    consumers=(directory.consumer(follow_zones), DISINFECTION_CASES),
    periodic=(DISINFECTION_TASKS,),
    projections=(directory,),
)
