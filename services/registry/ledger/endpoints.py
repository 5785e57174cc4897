import uuid
from typing import Annotated

from fastapi import File, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response, StreamingResponse

from services.registry.ledger import export, guide, schemas, service
from services.registry.models import SERVICE, LedgerImport
from shared.http import Uow, runtime_of, service_router
from shared.privacy import PersonalField, Presenter
from shared.problems import TooLarge, rows_rejected
from shared.spreadsheets import MEDIA_TYPES, SheetFormat, file_chunks

router = service_router(SERVICE, tags=["ledger"])


@router.post(
    "/imports/residents",
    status_code=201,
    response_model=schemas.ImportReport,
    summary="Import the base ledger (CSV in UTF-8 or GBK/GB18030, or .xlsx)",
    description=guide.upload_description(),
    responses={
        200: {"description": "This file was applied before; nothing changed"},
        413: {"description": "The file is larger than the configured limit"},
        422: {
            "description": "Rejected: errors by row and column, or no residents; nothing changed"
        },
    },
)
async def import_residents(
    uow: Uow, request: Request, file: Annotated[UploadFile, File(description="The ledger")]
) -> object:
    limit_mb = runtime_of(request).settings.max_upload_mb
    if file.size is not None and file.size > limit_mb << 20:
        raise TooLarge(f"the file has {file.size >> 20} MB; the limit is {limit_mb} MB")
    report = await service.import_ledger(uow, file=file.file, filename=file.filename or "ledger")
    if report.status == "rejected":
        raise rows_rejected(
            f"{len(report.errors)} problem(s) in {report.filename}; nothing was imported",
            [e.model_dump() for e in report.errors],
        )
    if report.status == "duplicate":
        return JSONResponse(report.model_dump(mode="json"), status_code=200)
    return report


@router.get(
    "/imports/template.csv",
    summary="The ledger template to fill in, as CSV (UTF-8 with BOM, opens in Excel)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
async def template_csv() -> Response:
    return _download(guide.template_csv(), "csv")


@router.get(
    "/imports/template.xlsx",
    summary="The ledger template to fill in, as .xlsx (a second sheet lists accepted values)",
    response_class=Response,
    responses={200: {"content": {MEDIA_TYPES["xlsx"]: {}}}},
)
async def template_xlsx() -> Response:
    return _download(guide.template_xlsx(), "xlsx")


def _download(content: bytes, kind: SheetFormat) -> Response:
    disposition = f'attachment; filename="ledger-template.{kind}"'
    return Response(
        content, media_type=MEDIA_TYPES[kind], headers={"Content-Disposition": disposition}
    )


_THEIRS = (
    "Imports placed inside your scope: the town office's file over compounds of several "
    "committees counts the whole file and is not shown to a committee's staff (their "
    "residents of it are read as residents)."
)


@router.get(
    "/imports",
    response_model=list[schemas.ImportOut],
    summary="Past ledger imports",
    description=f"The last 200, newest first. {_THEIRS}",
)
async def list_imports(uow: Uow) -> list[LedgerImport]:
    return await service.recent_imports(uow)


@router.get(
    "/imports/{import_id}",
    response_model=schemas.ImportOut,
    summary="One ledger import",
    description=f"{_THEIRS} Another answers 404.",
)
async def get_import(import_id: uuid.UUID, uow: Uow) -> LedgerImport:
    return await service.get_import(uow, import_id)


@router.get(
    "/exports/residents",
    summary="Export residents in the ledger's columns (CSV or .xlsx)",
    description="Unmasked, so only for roles that may see ID numbers; every export is logged.",
    response_class=StreamingResponse,
    responses={200: {"content": {MEDIA_TYPES["csv"]: {}, MEDIA_TYPES["xlsx"]: {}}}},
)
async def export_residents(
    uow: Uow,
    request: Request,
    format: Annotated[export.ExportFormat, Query()] = "csv",
    compound_id: uuid.UUID | None = None,
) -> StreamingResponse:
    # The ledger's columns are the registry's own, unmasked: the export is one reveal.
    present = Presenter(uow, reveal=True, endpoint=request.url.path)
    fields = (PersonalField.id_number, PersonalField.birth_date, PersonalField.phone)
    present.require(*fields, what="export residents")
    out, shown = await export.write(uow, export_format=format, compound_id=compound_id)
    await present.log(resource="resident-export", record_ids=shown, fields=fields)
    return StreamingResponse(
        file_chunks(out),
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="residents.{format}"'},
    )
