import uuid
from datetime import UTC, datetime

from services.testing.clocks import schemas, service
from services.testing.models import SERVICE, DirectoryPlace
from shared.http import Uow, service_router
from shared.pagination import Cursor, Limit, Page, keyset, next_cursor
from shared.service import Periodic

router = service_router(SERVICE, tags=["compound clocks"])

# Hourly is well within a day's resolution; a replica that ticks too announces nothing twice.
ANNOUNCE_ELIGIBLE = Periodic("compound-clocks", 3600, service.announce_eligible)


@router.get(
    "/compound-clocks",
    response_model=Page[schemas.CompoundClockOut],
    summary="Days since each compound's last positive",
    description="Per compound in your scope: whole days since its latest confirmed case (for "
    "a compound that never had one, since the start of its first round), the town's run of "
    "days to be eligible as epidemic-free, and when that was last announced.",
)
async def compound_clocks(
    uow: Uow, compound_id: uuid.UUID | None = None, cursor: Cursor = None, limit: Limit = 100
) -> Page[schemas.CompoundClockOut]:
    query = service.readings_query(compound_id=compound_id)
    rows = list(
        (
            await uow.session.execute(keyset(query, DirectoryPlace.id, cursor=cursor, limit=limit))
        ).all()
    )
    page, following = next_cursor(rows, limit)
    items = await service.readings(uow, page, now=datetime.now(UTC))
    return Page(items=items, next_cursor=following)
