"""The notify service as the kernel sees it."""

from pathlib import Path

from services.notify.audit.endpoints import router as audit_router
from services.notify.broadcasts.endpoints import router as broadcasts_router
from services.notify.broadcasts.service import enqueue_due
from services.notify.delivery import endpoints as delivery
from services.notify.delivery.service import count_states
from services.notify.delivery.worker import run_dispatcher
from services.notify.models import SERVICE, Base, directory, kernel
from services.notify.rules.endpoints import router as rules_router
from services.notify.rules.service import RULES_CONSUMER
from services.notify.templates.endpoints import router as templates_router
from shared.service import Periodic, ServiceSpec, Worker

# Large broadcasts are enqueued in batches, one per broadcast per tick, progress committed.
BROADCAST_ENQUEUE = Periodic("broadcast-enqueue", 0.2, enqueue_due)

SPEC = ServiceSpec(
    name=SERVICE,
    metadata=Base.metadata,
    kernel=kernel,
    migrations=Path(__file__).parent / "migrations",
    routers=(delivery.router, templates_router, rules_router, broadcasts_router, audit_router),
    resources=("sms-receipts", "sms-gateways", "templates", "rules", "broadcasts", "messages"),
    consumers=(directory.consumer(), RULES_CONSUMER),
    projections=(directory,),
    periodic=(
        Periodic(name="message-states", every_seconds=10, run=count_states),
        BROADCAST_ENQUEUE,
    ),
    workers=(Worker(name="dispatcher", run=run_dispatcher),),
)
