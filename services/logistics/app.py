"""The logistics service as the kernel sees it."""

from pathlib import Path

from services.logistics.models import SERVICE, Base, directory, kernel
from shared.service import ServiceSpec

SPEC = ServiceSpec(
    name=SERVICE,
    metadata=Base.metadata,
    kernel=kernel,
    migrations=Path(__file__).parent / "migrations",
    routers=(),
    resources=(),
    consumers=(directory.consumer(),),
    projections=(directory,),
)
