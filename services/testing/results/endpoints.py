import io
import uuid
from typing import Annotated, Any, Literal

from fastapi import Query, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from services.testing import identity
from services.testing.models import (
    SERVICE,
    MemberStatus,
    ResultUpload,
    RoundMember,
)
from services.testing.results import repository, schemas, service
from shared.directory.tables import ResidentRow
from shared.http import Uow, runtime_of, service_router
from shared.pagination import Cursor, Limit, Page
from shared.privacy import Present
from shared.problems import Invalid, TooLarge, UnsupportedMedia

router = service_router(SERVICE, tags=["results"])

# Multipart framing around the file.
FRAMING = 64 << 10

UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                },
                "encoding": {"file": {"contentType": "text/csv, application/json"}},
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "results": {"type": "array", "items": schemas.ResultIn.model_json_schema()}
                    },
                    "required": ["results"],
                },
                "example": {
                    "results": [
                        {
                            "tube_code": "SH2204020001",
                            "result": "negative",
                            "lab": "Riverside District Lab",
                            "resulted_at": "2022-04-02T14:30:00+08:00",
                        }
                    ]
                },
            },
            "text/csv": {
                "schema": {"type": "string"},
                "example": "tube_code,result,lab,resulted_at\n"
                "SH2204020001,negative,Riverside District Lab,2022-04-02T14:30:00+08:00\n",
            },
        },
    }
}


def _report(upload: ResultUpload, *, duplicate: bool) -> schemas.UploadReport:
    report = schemas.UploadReport.model_validate(upload)
    return report.model_copy(update={"status": "duplicate"}) if duplicate else report


@router.post(
    "/results/uploads",
    status_code=201,
    response_model=schemas.UploadReport,
    summary="Upload lab results (CSV or JSON, up to 250,000 tubes)",
    description="A CSV file (UTF-8; columns tube_code, result, lab, resulted_at; result is "
    "negative, positive or invalid; resulted_at with its UTC offset) as the multipart field "
    '`file` or as a text/csv body, or JSON `{"results": [...]}`. Bad rows (an unknown tube '
    "code, a tube resulted differently before — results are never overwritten —, a resulted_at "
    "in the future or before the tube was collected, beyond the clocks' tolerance) come back "
    "by row and column; the others apply. A tube with the same result again is unchanged; the "
    "same file again from you answers 200 `duplicate` and changes nothing. 422 when no row "
    "could be applied or the file cannot be read, naming the row; 404 (rows named as well) "
    "when every row names a tube unknown or outside your scope, as a single request would "
    "be answered.",
    openapi_extra=UPLOAD_BODY,
    responses={
        200: {"description": "You uploaded this very file before; nothing changed"},
        413: {"description": "The file is larger than the configured limit"},
        415: {"description": "Neither multipart, JSON nor CSV"},
        404: {"description": "Every row names a tube unknown or outside your scope: by row"},
        422: {"description": "Unreadable file, or no row could be applied: errors by row"},
    },
)
async def upload_results(uow: Uow, request: Request) -> object:
    settings = runtime_of(request).settings
    limit, skew = settings.max_upload_mb << 20, settings.clock_skew
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + FRAMING:
        raise _too_large(int(declared), limit)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=10) as form:
            part = form.get("file")
            if not isinstance(part, UploadFile):
                message = "send the results file as the multipart field 'file'"
                raise Invalid(message, errors=[{"row": None, "column": "file", "message": message}])
            if part.size is not None and part.size > limit:
                raise _too_large(part.size, limit)
            filename = part.filename or "results"
            media: Literal["csv", "json"] = (
                "json"
                if filename.lower().endswith(".json") or part.content_type == "application/json"
                else "csv"
            )
            upload, duplicate = await service.upload_results(
                uow, file=part.file, filename=filename, media=media, skew=skew
            )
    elif content_type in ("application/json", "text/csv"):
        body = await _body(request, limit)
        upload, duplicate = await service.upload_results(
            uow,
            file=io.BytesIO(body),
            filename="results.json" if content_type == "application/json" else "results.csv",
            media="json" if content_type == "application/json" else "csv",
            skew=skew,
        )
    else:
        raise UnsupportedMedia(
            f"send multipart/form-data, application/json or text/csv, not {content_type!r}"
        )
    report = _report(upload, duplicate=duplicate)
    if duplicate:
        return JSONResponse(report.model_dump(mode="json"), status_code=200)
    return report


def _too_large(size: int, limit: int) -> TooLarge:
    message = f"the upload has {size >> 20} MB; the limit is {limit >> 20} MB"
    return TooLarge(message, errors=[{"row": None, "column": None, "message": message}])


async def _body(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


@router.get(
    "/results/uploads",
    response_model=Page[schemas.UploadReport],
    summary="Results uploads (town operators: all; staff: their own)",
)
async def list_uploads(
    uow: Uow, cursor: Cursor = None, limit: Limit = 100
) -> Page[schemas.UploadReport]:
    page, following = await repository.uploads_page(uow, cursor=cursor, limit=limit)
    return Page(items=[_report(u, duplicate=False) for u in page], next_cursor=following)


@router.get("/results/uploads/{upload_id}", response_model=schemas.UploadReport)
async def get_upload(upload_id: uuid.UUID, uow: Uow) -> schemas.UploadReport:
    return _report(await repository.upload(uow, upload_id), duplicate=False)


class _Row:
    __slots__ = ("id", "member", "person")

    def __init__(self, member: RoundMember, person: ResidentRow | None) -> None:
        self.id, self.member, self.person = member.resident_id, member, person


@router.get(
    "/results",
    response_model=Page[schemas.PersonResult],
    summary="Where each resident of a round stands: sampled, negative, retest, positive…",
    description="Health data: names, phones and ID numbers are masked unless `reveal=true` "
    "and your role may see health data (logged); volunteers see no identity. A `round_id` "
    "that is no round you see answers 404 naming it.",
)
async def list_results(
    uow: Uow,
    present: Present,
    round_id: uuid.UUID,
    status: Annotated[
        str | None,
        Query(pattern=f"^({'|'.join(MemberStatus)})$"),
    ] = None,
    compound_id: uuid.UUID | None = None,
    building_id: uuid.UUID | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[schemas.PersonResult]:
    rows, following = await service.members_page(
        uow,
        round_id=round_id,
        status=status,
        compound_id=compound_id,
        building_id=building_id,
        cursor=cursor,
        limit=limit,
    )
    page = [_Row(m, p) for m, p, _ in rows]
    items = [
        schemas.PersonResult(
            round_id=r.member.round_id,
            resident_id=r.member.resident_id,
            **identity.of(r.person),
            compound_id=r.member.compound_id,
            building_id=r.member.building_id,
            unit_id=r.member.unit_id,
            status=r.member.status,
            tube_id=r.member.tube_id,
            sampled_at=r.member.sampled_at,
            resulted_at=r.member.resulted_at,
        )
        for r in page
    ]
    return await present(Page(items=items, next_cursor=following))
