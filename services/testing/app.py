"""The testing service as the kernel sees it."""

from pathlib import Path

from services.testing.clocks.endpoints import ANNOUNCE_ELIGIBLE
from services.testing.clocks.endpoints import router as clocks_router
from services.testing.coverage.endpoints import router as coverage_router
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
    routers=(rounds_router, tubes_router, coverage_router, clocks_router),
    resources=(
        "rounds",
        "tubes",
        "results",
        "cases",
        "transfers",
        "antigen-reports",
        "tasks",
        "testing-policies",
        "coverage",
        "compound-clocks",
    ),
    consumers=(Consumer("directory", BINDINGS, on_registry),),
    periodic=(ANNOUNCE_ELIGIBLE,),
)
