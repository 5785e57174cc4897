import tempfile
import uuid
from typing import IO, Annotated

from fastapi import Query, Request
from fastapi.responses import StreamingResponse

from services.logistics.donations import repository, schemas, service
from services.logistics.models import SERVICE
from shared.http import Uow, service_router
from shared.pagination import Cursor, Limit, Page
from shared.privacy import PersonalField, Present, Presenter
from shared.spreadsheets import MEDIA_TYPES, SheetFormat, file_chunks

router = service_router(SERVICE, tags=["donations"])
Donor = Annotated[str | None, Query(max_length=120, pattern=r"^[^\x00-\x1f]*$")]
# An export holds the whole register a committee shows its donors.
EXPORT_LIMIT = 20_000


@router.get(
    "/donations",
    response_model=Page[schemas.DonationOut],
    summary="The donation register: what arrived from whom, and where it went",
    description="Donations received at the stores you see, oldest first; each donated batch "
    "with where it went: issued to which plan or request (and building; one entry per store, "
    "plan or request and building, however many households it reached), still in stock, "
    "lost in transit, written off. Donors' contacts are masked unless revealed.",
)
async def list_donations(
    uow: Uow,
    present: Present,
    holder_id: uuid.UUID | None = None,
    donor: Donor = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[schemas.DonationOut]:
    page, following = await repository.donations_page(
        uow, holder_id=holder_id, donor=donor, cursor=cursor, limit=limit
    )
    items = await present(await service.register(uow, page))
    return Page(items=items, next_cursor=following)


@router.get(
    "/donations/export",
    summary="The donation register as CSV or .xlsx, one row per place a donated batch went",
    description="Donors' contacts unmasked: for roles that may see phone numbers; logged. "
    "At most 20,000 donations in one file: a register larger than that is refused (422 "
    "naming `holder_id`), to be exported per store or donor, never cut short.",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}, MEDIA_TYPES["xlsx"]: {}}}},
)
async def export_donations(
    uow: Uow,
    request: Request,
    format: Annotated[SheetFormat, Query()] = "csv",
    holder_id: uuid.UUID | None = None,
    donor: Donor = None,
) -> StreamingResponse:
    present = Presenter(uow, reveal=True, endpoint=request.url.path)
    present.require(PersonalField.phone, what="export the donation register")
    receipts = await service.to_export(uow, holder_id=holder_id, donor=donor, limit=EXPORT_LIMIT)
    # Closed by the response once streamed.
    out: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115
    await service.export(uow, out, sheet_format=format, receipts=receipts)
    await present.log(
        resource="donations", record_ids=[r.id for r in receipts], fields=[PersonalField.phone]
    )
    out.seek(0)
    return StreamingResponse(
        file_chunks(out),
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="donations.{format}"'},
    )
