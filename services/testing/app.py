"""The testing service as the kernel sees it."""

from pathlib import Path

from services.testing.antigen.endpoints import router as antigen_router
from services.testing.cases.endpoints import router as cases_router
from services.testing.cases.service import report_overdue_transfers
from services.testing.clocks.endpoints import ANNOUNCE_ELIGIBLE
from services.testing.clocks.endpoints import router as clocks_router
from services.testing.coverage.endpoints import router as coverage_router
from services.testing.models import SERVICE, Base, directory, kernel
from services.testing.policies.endpoints import router as policies_router
from services.testing.results.endpoints import router as results_router
from services.testing.rounds.endpoints import router as rounds_router
from services.testing.rounds.service import follow_residents
from services.testing.tasks.endpoints import router as tasks_router
from services.testing.tubes.endpoints import router as tubes_router
from shared.service import Periodic, ServiceSpec

TRANSFER_OVERDUE = Periodic("transfer-overdue", 60, report_overdue_transfers)

SPEC = ServiceSpec(
    name=SERVICE,
    metadata=Base.metadata,
    kernel=kernel,
    migrations=Path(__file__).parent / "migrations",
    routers=(
        rounds_router,
        tubes_router,
        results_router,
        cases_router,
        antigen_router,
        tasks_router,
        policies_router,
        coverage_router,
        clocks_router,
    ),
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
    consumers=(directory.consumer(follow_residents),),
    periodic=(ANNOUNCE_ELIGIBLE, TRANSFER_OVERDUE),
    projections=(directory,),
)
