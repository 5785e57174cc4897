import uuid

from services.testing.models import SERVICE, Policy
from services.testing.policies import schemas, service
from shared.http import Uow, service_router

router = service_router(SERVICE, tags=["testing policies"])


@router.get(
    "/testing-policies/{town_id}",
    response_model=schemas.PolicyOut,
    summary="A town's testing policy (its defaults until the town office sets it)",
)
async def get_policy(town_id: uuid.UUID, uow: Uow) -> Policy:
    return await service.read_policy(uow, town_id=town_id)


@router.put(
    "/testing-policies/{town_id}",
    response_model=schemas.PolicyOut,
    summary="Set a town's testing policy",
    description="Applies to cases confirmed from now on; contacts already listed keep their "
    "quarantine. Town operators only.",
)
async def put_policy(town_id: uuid.UUID, body: schemas.PolicyIn, uow: Uow) -> Policy:
    return await service.set_policy(uow, town_id=town_id, data=body)
