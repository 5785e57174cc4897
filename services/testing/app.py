"""The testing service as the kernel sees it."""

from pathlib import Path

from services.testing.directory.consumer import BINDINGS, on_registry
from services.testing.models import SERVICE, Base, kernel
from services.testing.rounds.endpoints import router as rounds_router
from services.testing.tubes.endpoints import router as tubes_router
from shared.service import Consumer, ServiceSpec

SPEC = ServiceSpec(
    name=SERVICE,
    metadata=Base.metadata,
    kernel=kernel,
    migrations=Path(__file__).parent / "migrations",
    routers=(rounds_router, tubes_router),
    resources=("rounds", "tubes"),
    consumers=(Consumer("directory", BINDINGS, on_registry),),
)
