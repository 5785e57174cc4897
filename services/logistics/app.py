"""The logistics service as the kernel sees it."""

from pathlib import Path

from services.logistics.models import SERVICE, Base, directory, kernel
from services.logistics.recurrences.endpoints import router as recurrences_router
from services.logistics.recurrences.service import make_occurrences
from services.logistics.requests.endpoints import router as requests_router
from services.logistics.requests.service import escalate_overdue
from services.logistics.trips.endpoints import router as trips_router
from services.logistics.trips.service import report_overdue_cards
from shared.service import Periodic, ServiceSpec

# ---- requests ----
REQUEST_OVERDUE = Periodic("request-overdue", 60, escalate_overdue)
CARD_OVERDUE = Periodic("card-overdue", 60, report_overdue_cards)
RECURRING_REQUESTS = Periodic("recurring-requests", 60, make_occurrences)

SPEC = ServiceSpec(
    name=SERVICE,
    metadata=Base.metadata,
    kernel=kernel,
    migrations=Path(__file__).parent / "migrations",
    routers=(requests_router, trips_router, recurrences_router),
    resources=("requests", "request-settings", "recurring-requests", "cards", "trips"),
    consumers=(directory.consumer(),),
    periodic=(REQUEST_OVERDUE, CARD_OVERDUE, RECURRING_REQUESTS),
    projections=(directory,),
)
