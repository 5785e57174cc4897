"""The logistics service as the kernel sees it."""

from pathlib import Path

from services.logistics.deliveries.endpoints import router as deliveries_router
from services.logistics.deliveries.service import follow_zones as doors_follow_zones
from services.logistics.deliveries.service import on_event as follow_doors
from services.logistics.disinfection.endpoints import router as disinfection_router
from services.logistics.disinfection.service import follow_zones, on_case_confirmed, run_job
from services.logistics.donations.endpoints import router as donations_router
from services.logistics.items.endpoints import router as items_router
from services.logistics.models import SERVICE, Base, directory, kernel
from services.logistics.plans.endpoints import router as plans_router
from services.logistics.recurrences.endpoints import router as recurrences_router
from services.logistics.recurrences.service import make_occurrences
from services.logistics.requests.endpoints import router as requests_router
from services.logistics.requests.service import escalate_overdue
from services.logistics.stock.endpoints import router as stock_router
from services.logistics.transfers.endpoints import router as transfers_router
from services.logistics.trips.endpoints import router as trips_router
from services.logistics.trips.service import report_overdue_cards
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
# A confirmed case's household gets door delivery (sealed zones: with the directory, below).
DISTRIBUTION_DOORS = Consumer("distribution-doors", ("testing.case.confirmed",), follow_doors)
# Requests past their service-time target, escalated a level at a time.
REQUEST_OVERDUE = Periodic("request-overdue", 60, escalate_overdue)
# Insurance cards not returned in time.
CARD_OVERDUE = Periodic("card-overdue", 60, report_overdue_cards)
# Occurrences of recurring requests (a dialysis patient's trips), each made once.
RECURRING_REQUESTS = Periodic("recurring-requests", 60, make_occurrences)

SPEC = ServiceSpec(
    name=SERVICE,
    metadata=Base.metadata,
    kernel=kernel,
    migrations=Path(__file__).parent / "migrations",
    routers=(
        items_router,
        stock_router,
        transfers_router,
        donations_router,
        plans_router,
        deliveries_router,
        requests_router,
        trips_router,
        recurrences_router,
        disinfection_router,
    ),
    resources=(
        "items",
        "kits",
        "stock",
        "donations",
        "distribution-plans",
        "requests",
        "request-settings",
        "recurring-requests",
        "cards",
        "trips",
        "disinfection-defaults",
        "disinfection-schedules",
        "disinfection-tasks",
    ),
    # Disinfection schedules and door delivery follow the zones the directory holds.
    consumers=(
        directory.consumer(follow_zones, doors_follow_zones),
        DISINFECTION_CASES,
        DISTRIBUTION_DOORS,
    ),
    periodic=(DISINFECTION_TASKS, REQUEST_OVERDUE, CARD_OVERDUE, RECURRING_REQUESTS),
    projections=(directory,),
)
