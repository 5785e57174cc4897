"""Lab results by bulk upload: a file of tube results applied set-based.

The file streams through the parser into a temporary staging table (COPY on PostgreSQL,
batched inserts on SQLite); matching, checking and applying are then a handful of
``UPDATE ... FROM`` statements, whatever the size of the file, so a million residents are
resulted in seconds. Per row: an unknown tube code (or one outside the caller's scope) is
an error, the same result again is unchanged, and a different result for a resulted tube is
an error — a result is never overwritten. Bad rows are reported and the others applied.

What follows from the results happens in the same transaction: a negative tube's members
are negative; a positive pool puts every member under a door-to-door retest
(``testing.pool.positive``); an invalid tube asks for a resample; a positive single tube or
retest opens a case (cases/service.py). One ``testing.results.recorded`` per upload.
"""

import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any, BinaryIO, Literal

from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    Interval,
    MetaData,
    String,
    Table,
    and_,
    case,
    delete,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.schema import CreateTable, DropTable
from sqlalchemy.types import Uuid

from services.testing.cases.service import Positive, confirm_cases
from services.testing.models import (
    MemberStatus,
    ResultUpload,
    RoundMember,
    Task,
    TaskKind,
    TaskStatus,
    Tube,
    TubeMember,
    TubeStatus,
)
from services.testing.results import repository
from services.testing.results.parse import (
    ResultRow,
    ResultsFormatError,
    RowError,
    read_csv,
    read_json,
)
from services.testing.rounds.service import get_round
from shared.authz import MANAGERS, policy
from shared.contracts.testing import CaseSource, PoolPositive, ResultsRecorded
from shared.db import insert_ignoring_duplicates, table_of, utc_datetime
from shared.ids import new_id
from shared.problems import Invalid, Problem, TooLarge, rows_rejected
from shared.uow import UnitOfWork
from shared.uploads import file_digest

MAX_REPORTED_ERRORS = 1_000
STAGE_BATCH = 10_000
# Uploads apply one at a time (PostgreSQL; SQLite has one writer anyway), so the checks and
# the writes of one upload see the same tubes.
UPLOAD_LOCK = 0x7E57_0001
COLLECTED = TubeStatus.collected.value

STAGING = Table(
    "results_staging",
    MetaData(),
    Column("row", Integer),
    Column("code", String(40)),
    Column("result", String(10)),
    Column("lab", String(120)),
    Column("resulted_at", utc_datetime()),
    # Filled from the tube of that code, if the caller may see one.
    Column("tube_id", Uuid),
    Column("prior", String(10)),
    Column("round_id", Uuid),
    Column("town_id", Uuid),
    Column("pooled", Boolean),
    Column("retest", Boolean),
    Column("collected_at", utc_datetime()),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)
LOADED = ("row", "code", "result", "lab", "resulted_at")


@dataclass
class Tally:
    rows: int = 0
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    _last_error_row: int | None = None

    def error(self, error: RowError) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(error)
        if error.row != self._last_error_row:
            self._last_error_row = error.row
            self.rows += 1


@dataclass
class Counts:
    applied: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    unchanged: int = 0
    unknown: int = 0
    conflicting: int = 0

    @property
    def applied_total(self) -> int:
        return sum(self.applied.values())


# Lab results are uploaded by managers and labs' service accounts; each row applies only to
# a tube the uploader can see (the others are row errors).
UPLOAD = policy("lab results", "upload", *MANAGERS)


async def upload_results(
    uow: UnitOfWork,
    *,
    file: BinaryIO,
    filename: str,
    media: Literal["csv", "json"],
    skew: timedelta,
) -> tuple[ResultUpload, bool]:
    """Apply a results file; return its upload and whether it is one the caller uploaded
    before (then nothing changed). A file that cannot be read, or whose every row is
    wrong, raises a problem naming the rows, and nothing is written. A result later than
    now, or earlier than its tube's swab (by more than ``skew``, the clocks' tolerance, as
    for the tubes' own times), is a row error."""
    UPLOAD.check_role(uow)
    sha256 = file_digest(file)
    previous = await uow.session.scalar(
        select(ResultUpload)
        .where(
            ResultUpload.sha256 == sha256,
            ResultUpload.created_by == uow.principal.username,
        )
        .limit(1)
    )
    if previous is not None:
        return previous, True
    tally = Tally()
    try:
        latest = datetime.now(UTC) + skew
        rows = (
            read_json(file.read(), latest=latest)
            if media == "json"
            else read_csv(file, latest=latest)
        )
        await _stage(uow, rows, tally)
    except ResultsFormatError as exc:
        raise _format_problem(exc) from None
    if uow.dialect == "postgresql":
        await uow.session.execute(select(func.pg_advisory_xact_lock(UPLOAD_LOCK)))
    await _match(uow)
    early = await _before_collection(uow, skew)
    counts = await _count(uow)
    await _row_errors(uow, counts, tally, early)
    if not counts.applied_total and not counts.unchanged:
        raise _nothing_applied(tally)
    upload = await _record(uow, filename=filename, sha256=sha256, counts=counts, tally=tally)
    if counts.applied_total:
        now = datetime.now(UTC)
        upload.people = await _apply(uow, upload.id)
        await _follow_ups(uow, now)
        uow.emit(
            ResultsRecorded(
                upload_id=upload.id,
                town_id=upload.town_id,
                batch=1,
                negative=upload.negative,
                positive=upload.positive,
                invalid=upload.invalid,
            )
        )
    await uow.session.execute(DropTable(STAGING))
    return upload, False


async def members_page(
    uow: UnitOfWork,
    *,
    round_id: uuid.UUID,
    status: str | None,
    compound_id: uuid.UUID | None,
    building_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Any], str | None]:
    """A page of where the round's members stand; a round the caller does not see (or that
    does not exist) is a 404 naming ``round_id``, not an empty list that reads as "nobody"."""
    await get_round(uow, round_id, field="round_id")
    return await repository.members_page(
        uow,
        round_id=round_id,
        status=status,
        compound_id=compound_id,
        building_id=building_id,
        cursor=cursor,
        limit=limit,
    )


def _format_problem(exc: ResultsFormatError) -> Problem:
    problem = TooLarge if exc.too_large else Invalid
    errors = [{"row": exc.row, "column": exc.column, "message": exc.message}]
    return problem(exc.message, errors=errors)


def _nothing_applied(tally: Tally) -> Problem:
    if not tally.error_count:
        message = "the file holds no results"
        return Invalid(message, errors=[{"row": None, "column": None, "message": message}])
    return rows_rejected(
        f"no result could be applied: {tally.error_count} row error(s), nothing changed",
        [_error_out(e) for e in tally.errors],
    )


def _error_out(error: RowError) -> dict[str, Any]:
    return {
        "row": error.row,
        "column": error.column,
        "message": error.message,
        "tube_code": error.tube_code,
    }


async def _stage(uow: UnitOfWork, rows: Iterator[ResultRow | RowError], tally: Tally) -> None:
    await uow.session.execute(CreateTable(STAGING))
    batch: list[tuple[Any, ...]] = []
    for item in rows:
        if isinstance(item, RowError):
            tally.error(item)
            continue
        tally.rows += 1
        batch.append((item.row, item.tube_code, item.result, item.lab, item.resulted_at))
        if len(batch) == STAGE_BATCH:
            await _load(uow, batch)
            batch = []
    if batch:
        await _load(uow, batch)


async def _load(uow: UnitOfWork, records: list[tuple[Any, ...]]) -> None:
    if uow.dialect == "postgresql":
        connection = await uow.session.connection()
        raw = await connection.get_raw_connection()
        await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
            STAGING.name, records=records, columns=LOADED
        )
    else:
        rows = [dict(zip(LOADED, r, strict=True)) for r in records]
        await uow.session.execute(STAGING.insert(), rows)


async def _match(uow: UnitOfWork) -> None:
    """Each staged row gets the tube of its code, if the caller may see it."""
    tubes = table_of(Tube)
    await uow.session.execute(
        update(STAGING)
        .values(
            tube_id=tubes.c.id,
            prior=tubes.c.status,
            round_id=tubes.c.round_id,
            town_id=tubes.c.town_id,
            pooled=tubes.c.pooled,
            retest=tubes.c.retest,
            collected_at=tubes.c.collected_at,
        )
        .where(tubes.c.code == STAGING.c.code, uow.scope.clause(tubes))
    )
    if uow.dialect == "postgresql":
        # The planner must know the staging table's size to join it with a million members.
        await uow.session.execute(text(f"ANALYZE {STAGING.name}"))


async def _count(uow: UnitOfWork) -> Counts:
    counts = Counts()
    query = select(STAGING.c.prior, STAGING.c.result, func.count()).group_by(
        STAGING.c.prior, STAGING.c.result
    )
    for prior, result, n in (await uow.session.execute(query)).all():
        if prior is None:
            counts.unknown += n
        elif prior == COLLECTED:
            counts.applied[result] += n
        elif prior == result:
            counts.unchanged += n
        else:
            counts.conflicting += n
    return counts


async def _before_collection(uow: UnitOfWork, skew: timedelta) -> list[RowError]:
    """Rows resulted before their tube was swabbed (beyond the clocks' tolerance): errors,
    taken out of the staging table so that nothing of them applies."""
    if uow.dialect == "postgresql":
        too_early = STAGING.c.resulted_at < STAGING.c.collected_at - literal(skew, Interval())
    else:
        # SQLite keeps times as text; julianday() makes them comparable in days.
        days = skew / timedelta(days=1)
        too_early = func.julianday(STAGING.c.resulted_at) < (
            func.julianday(STAGING.c.collected_at) - days
        )
    query = (
        select(STAGING.c.row, STAGING.c.code, STAGING.c.resulted_at, STAGING.c.collected_at)
        .where(STAGING.c.tube_id.is_not(None), too_early)
        .order_by(STAGING.c.row)
    )
    errors = [
        RowError(
            row,
            "resulted_at",
            f"resulted_at {resulted_at.isoformat()} is before tube {code} was collected "
            f"({collected_at.isoformat()})",
            code,
        )
        for row, code, resulted_at, collected_at in (await uow.session.execute(query)).all()
    ]
    if errors:
        await uow.session.execute(delete(STAGING).where(STAGING.c.tube_id.is_not(None), too_early))
    return errors


async def _row_errors(uow: UnitOfWork, counts: Counts, tally: Tally, early: list[RowError]) -> None:
    tally.errors += early
    tally.error_count += len(early)
    if counts.unknown:
        tally.errors += await _unknown(uow)
    if counts.conflicting:
        tally.errors += await _conflicting(uow)
    tally.error_count += counts.unknown + counts.conflicting
    tally.errors = sorted(tally.errors, key=attrgetter("row"))[:MAX_REPORTED_ERRORS]


async def _unknown(uow: UnitOfWork) -> list[RowError]:
    query = (
        select(STAGING.c.row, STAGING.c.code)
        .where(STAGING.c.tube_id.is_(None))
        .order_by(STAGING.c.row)
        .limit(MAX_REPORTED_ERRORS)
    )
    return [
        RowError(row, "tube_code", f"no tube {code} in your scope", code)
        for row, code in (await uow.session.execute(query)).all()
    ]


async def _conflicting(uow: UnitOfWork) -> list[RowError]:
    query = (
        select(STAGING.c.row, STAGING.c.code, STAGING.c.prior)
        .where(STAGING.c.prior != COLLECTED, STAGING.c.prior != STAGING.c.result)
        .order_by(STAGING.c.row)
        .limit(MAX_REPORTED_ERRORS)
    )
    return [
        RowError(
            row,
            "result",
            f"tube {code} was resulted {prior} before; a result is never overwritten "
            "(ask the town office to correct it)",
            code,
        )
        for row, code, prior in (await uow.session.execute(query)).all()
    ]


async def _record(
    uow: UnitOfWork, *, filename: str, sha256: str, counts: Counts, tally: Tally
) -> ResultUpload:
    town_id = await uow.session.scalar(
        select(STAGING.c.town_id).where(STAGING.c.town_id.is_not(None)).limit(1)
    )
    upload = ResultUpload(
        id=new_id(),
        town_id=town_id,
        sha256=sha256,
        filename=filename[:255],
        rows=tally.rows,
        applied=counts.applied_total,
        unchanged=counts.unchanged,
        negative=counts.applied[TubeStatus.negative.value],
        positive=counts.applied[TubeStatus.positive.value],
        invalid=counts.applied[TubeStatus.invalid.value],
        people=0,
        error_count=tally.error_count,
        errors=[_error_out(e) for e in tally.errors],
        created_by=uow.principal.username,
        created_at=datetime.now(UTC),
    )
    uow.session.add(upload)
    await uow.session.flush()
    return upload


async def _apply(uow: UnitOfWork, upload_id: uuid.UUID) -> int:
    """Result the tubes, then their members; return how many residents changed status.
    Only members whose current tube this is change: someone retested since keeps the
    retest's outcome."""
    tubes = table_of(Tube)
    await uow.session.execute(
        update(tubes)
        .values(
            status=STAGING.c.result,
            lab=STAGING.c.lab,
            resulted_at=STAGING.c.resulted_at,
            upload_id=upload_id,
        )
        .where(
            tubes.c.id == STAGING.c.tube_id,
            STAGING.c.prior == COLLECTED,
            tubes.c.status == COLLECTED,
        )
    )
    members = table_of(RoundMember)
    in_tube = table_of(TubeMember)
    status = case(
        (STAGING.c.result == TubeStatus.negative.value, MemberStatus.negative.value),
        (STAGING.c.result == TubeStatus.invalid.value, MemberStatus.resample_required.value),
        (STAGING.c.pooled, MemberStatus.retest_required.value),
        else_=MemberStatus.positive.value,
    )
    changed = await uow.session.execute(
        update(members)
        .values(status=status, resulted_at=STAGING.c.resulted_at)
        .where(
            STAGING.c.prior == COLLECTED,
            in_tube.c.tube_id == STAGING.c.tube_id,
            members.c.round_id == STAGING.c.round_id,
            members.c.resident_id == in_tube.c.resident_id,
            members.c.tube_id == STAGING.c.tube_id,
        )
    )
    return int(changed.rowcount)  # type: ignore[attr-defined]


async def _follow_ups(uow: UnitOfWork, now: datetime) -> None:
    """Tasks, pool events and cases for the positive and invalid tubes just resulted."""
    members = table_of(RoundMember)
    in_tube = table_of(TubeMember)
    query = (
        select(
            STAGING.c.tube_id,
            STAGING.c.code,
            STAGING.c.result,
            STAGING.c.pooled,
            STAGING.c.retest,
            STAGING.c.round_id,
            STAGING.c.resulted_at,
            members.c.resident_id,
            members.c.household_id,
            members.c.unit_id,
            members.c.town_id,
            members.c.compound_id,
            members.c.building_id,
        )
        .join(in_tube, in_tube.c.tube_id == STAGING.c.tube_id)
        .join(
            members,
            and_(
                members.c.round_id == STAGING.c.round_id,
                members.c.resident_id == in_tube.c.resident_id,
                members.c.tube_id == STAGING.c.tube_id,
            ),
        )
        .where(
            STAGING.c.prior == COLLECTED,
            STAGING.c.result.in_((TubeStatus.positive.value, TubeStatus.invalid.value)),
        )
        .order_by(STAGING.c.row)
    )
    rows = (await uow.session.execute(query)).all()
    pools: dict[uuid.UUID, list[Any]] = defaultdict(list)
    tasks: list[dict[str, Any]] = []
    singles: list[Any] = []
    for row in rows:
        if row.result == TubeStatus.invalid.value:
            tasks.append(_task(row, TaskKind.resample, now))
        elif row.pooled:
            tasks.append(_task(row, TaskKind.retest, now))
            pools[row.tube_id].append(row)
        else:
            singles.append(row)
    if tasks:
        await uow.session.execute(insert_ignoring_duplicates(table_of(Task), uow.dialect), tasks)
    for pool in pools.values():
        _announce_pool(uow, pool)
    if singles:
        await confirm_cases(uow, positives=await _positives(uow, singles), now=now)


def _task(row: Any, kind: TaskKind, now: datetime) -> dict[str, Any]:
    return {
        "id": new_id(),
        "round_id": row.round_id,
        "resident_id": row.resident_id,
        "unit_id": row.unit_id,
        "town_id": row.town_id,
        "compound_id": row.compound_id,
        "building_id": row.building_id,
        "kind": kind.value,
        "cause_id": row.tube_id,
        "status": TaskStatus.open.value,
        "door_to_door": True,
        "created_at": now,
    }


def _announce_pool(uow: UnitOfWork, pool: Sequence[Any]) -> None:
    first = pool[0]
    uow.emit(
        PoolPositive(
            round_id=first.round_id,
            tube_id=first.tube_id,
            tube_code=first.code,
            town_id=first.town_id,
            compound_id=first.compound_id,
            member_ids=[r.resident_id for r in pool],
            resulted_at=first.resulted_at,
        ),
        compound_id=first.compound_id,
    )


async def _positives(uow: UnitOfWork, singles: Sequence[Any]) -> list[Positive]:
    """A positive single tube is a case; its source says how it was found."""
    after_antigen = set(
        await uow.session.scalars(
            select(Task.done_tube_id).where(
                Task.kind == TaskKind.pcr_after_antigen.value,
                Task.done_tube_id.in_([r.tube_id for r in singles if r.retest]),
            )
        )
    )
    positives = []
    for row in singles:
        source: CaseSource = "single_tube"
        if row.tube_id in after_antigen:
            source = "antigen_confirmed"
        elif row.retest:
            source = "retest"
        positives.append(
            Positive(
                resident_id=row.resident_id,
                household_id=row.household_id,
                unit_id=row.unit_id,
                town_id=row.town_id,
                compound_id=row.compound_id,
                building_id=row.building_id,
                round_id=row.round_id,
                tube_id=row.tube_id,
                tube_code=row.code,
                source=source,
            )
        )
    return positives
