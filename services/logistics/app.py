"""The logistics service as the kernel sees it."""

from pathlib import Path

from services.logistics.donations.endpoints import router as donations_router
from services.logistics.items.endpoints import router as items_router
from services.logistics.models import SERVICE, Base, directory, kernel
from services.logistics.stock.endpoints import router as stock_router
from services.logistics.transfers.endpoints import router as transfers_router
from shared.service import ServiceSpec

SPEC = ServiceSpec(
    name=SERVICE,
    metadata=Base.metadata,
    kernel=kernel,
    migrations=Path(__file__).parent / "migrations",
    routers=(items_router, stock_router, transfers_router, donations_router),
    resources=("items", "kits", "stock", "donations"),
    consumers=(directory.consumer(),),
    projections=(directory,),
)
