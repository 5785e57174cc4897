"""The notify service as the kernel sees it."""

from pathlib import Path

from services.notify.delivery import endpoints as delivery
from services.notify.delivery.service import count_states
from services.notify.delivery.worker import run_dispatcher
from services.notify.models import SERVICE, Base, directory, kernel
from shared.service import Periodic, ServiceSpec, Worker

SPEC = ServiceSpec(
    name=SERVICE,
    metadata=Base.metadata,
    kernel=kernel,
    migrations=Path(__file__).parent / "migrations",
    routers=(delivery.router,),
    resources=("sms-receipts", "sms-gateways"),
    consumers=(directory.consumer(),),
    projections=(directory,),
    periodic=(Periodic(name="message-states", every_seconds=10, run=count_states),),
    workers=(Worker(name="dispatcher", run=run_dispatcher),),
)
