"""The logistics service as the kernel sees it."""

from pathlib import Path

from services.logistics.deliveries.endpoints import router as deliveries_router
from services.logistics.deliveries.service import on_event as follow_doors
from services.logistics.donations.endpoints import router as donations_router
from services.logistics.items.endpoints import router as items_router
from services.logistics.models import SERVICE, Base, directory, kernel
from services.logistics.plans.endpoints import router as plans_router
from services.logistics.stock.endpoints import router as stock_router
from services.logistics.transfers.endpoints import router as transfers_router
from shared.service import Consumer, ServiceSpec

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
    ),
    resources=("items", "kits", "stock", "donations", "distribution-plans"),
    consumers=(
        directory.consumer(),
        # ---- distribution ----
        # Door delivery follows sealed zones and confirmed cases (each change carries its
        # time: an older zone change arriving late is ignored).
        Consumer(
            "distribution-doors", ("registry.zone.changed", "testing.case.confirmed"), follow_doors
        ),
    ),
    projections=(directory,),
)
