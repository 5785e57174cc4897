"""Recording sampled tubes from staff clients, one at a time or as a batch recorded offline.

Each tube is checked on its own: a bad tube is reported by its row and the good ones are
kept. A tube already recorded with the same content is accepted again without change, so a
client on a weak network can resend a batch safely."""

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, NoReturn

from sqlalchemy import Row, Table, and_, bindparam, case, or_, select, update

from services.testing.models import (
    DirectoryResident,
    DirectoryZone,
    MemberStatus,
    Round,
    RoundMember,
    RoundStatus,
    Site,
    Task,
    TaskKind,
    TaskStatus,
    Tube,
    TubeMember,
)
from services.testing.rounds.service import SAMPLE, add_members, get_round
from services.testing.tubes.schemas import TubeIn
from shared.auth import UNSCOPED, Principal, Role, Scope
from shared.authz import Place
from shared.bulk import Rows, among
from shared.db import AnySelect, table_of
from shared.desk import Desk
from shared.directory.zones import zone_level_of
from shared.idempotency import Answer, KeyedWrite, resent, store_answers
from shared.ids import new_id
from shared.problems import OUT_OF_SCOPE, Conflict, NotFound, Problem, rows_rejected
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)
FOLLOW_UPS = frozenset({MemberStatus.retest_required.value, MemberStatus.resample_required.value})
AFTER_ANTIGEN = TaskKind.pcr_after_antigen.value
# Ids per IN list, well under SQLite's bound-parameter limit.
CHUNK = 5_000
# A round member as the checks read it: resident_id, status, places, sealed.
Member = Row[*tuple[Any, ...]]
# A round as recording reads it: id, name, status, window, pool size, place.
RoundHead = Row[*tuple[Any, ...]]
# A tube recorded before (its columns), as a resend is answered.
TubeRow = Row[*tuple[Any, ...]]


class TubeRejected(Exception):
    def __init__(self, field: str, message: str, *, clash: bool = False) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        # Refused only because another tube of the same batch came first.
        self.clash = clash


@dataclass
class Outcome:
    accepted: list[Tube] = field(default_factory=list)
    # Recorded before, or earlier in this batch by an identical row (a resent scan).
    unchanged: list[Tube | TubeRow] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    # Each row's tube, recorded now or before (the rows without an error).
    by_row: dict[int, Tube | TubeRow] = field(default_factory=dict)
    # Rows refused only for clashing with another row of the batch (a code or a resident):
    # sent alone, after the batch, they would be answered as a resend or a repeat.
    clashes: set[int] = field(default_factory=set)
    # The round's place, where the policy was checked.
    place: Place | None = None


@dataclass
class _Known:
    """What the checks need, read once for the whole batch (members as plain rows: a burst
    of tubes should not pay for ORM objects it never changes)."""

    members: dict[uuid.UUID, Member]
    tubes: dict[str, TubeRow]
    tube_members: dict[uuid.UUID, list[uuid.UUID]]
    sites: set[uuid.UUID]
    # Residents with an open PCR retest after a positive antigen self-test.
    after_antigen: set[uuid.UUID]
    # Named residents who are no members but whom the caller can see (outside the round,
    # rather than outside the caller's scope).
    seen_outside: set[uuid.UUID] = field(default_factory=set)


def _chunks(ids: Sequence[Any]) -> list[Sequence[Any]]:
    return [ids[n : n + CHUNK] for n in range(0, len(ids), CHUNK)]


async def _read(uow: UnitOfWork, round_: RoundHead, tubes: Sequence[TubeIn]) -> _Known:
    after_antigen = await _after_antigen(uow, list({t.member_ids[0] for t in tubes if t.retest}))
    if after_antigen:
        # Someone who tested positive on antigen is sampled wherever a round is open,
        # joining it if its scope covers them.
        await add_members(uow, await get_round(uow, round_.id), resident_ids=list(after_antigen))
    named = list({m for t in tubes for m in t.member_ids})
    # Members first: their lock waits for a tube written meanwhile with them, whose code is
    # then read as recorded (a resend is answered unchanged, not as a second sampling).
    members = await _round_members(uow, round_, named)
    known_tubes, tube_members = await _tubes_by_code(uow, list({t.code for t in tubes}))
    return _Known(
        members=members,
        tubes=known_tubes,
        tube_members=tube_members,
        sites=await _sites(uow, round_, list({t.site_id for t in tubes if t.site_id})),
        after_antigen=after_antigen,
        seen_outside=await _visible(uow, [m for m in named if m not in members]),
    )


# The statements of the tube path, built once per process (and database dialect): a burst
# of single tubes pays neither for building them nor for SQLAlchemy's cache key of each
# (``shared.authz`` scopes each once per caller's scope). A list of ids is one parameter,
# ``ids`` (``among``: one array on PostgreSQL, so a statement is prepared once whatever the
# length of the list).
_rounds, _members = table_of(Round), table_of(RoundMember)
_tubes, _tube_members = table_of(Tube), table_of(TubeMember)
_residents, _tasks, _zones, _sites_ = (
    table_of(DirectoryResident),
    table_of(Task),
    table_of(DirectoryZone),
    table_of(Site),
)
_ROUND = select(
    *(
        _rounds.c[name]
        for name in (
            "id",
            "name",
            "status",
            "starts_at",
            "ends_at",
            "pool_size",
            *Place.__dataclass_fields__,
        )
    )
).where(_rounds.c.id == bindparam("round_id"))


@cache
def _visible_query(dialect: str) -> AnySelect:
    return select(_residents.c.id).where(among(_residents.c.id, "ids", dialect=dialect))


@cache
def _after_antigen_query(dialect: str) -> AnySelect:
    return select(_tasks.c.resident_id).where(
        _tasks.c.kind == AFTER_ANTIGEN,
        _tasks.c.status == TaskStatus.open.value,
        among(_tasks.c.resident_id, "ids", dialect=dialect),
    )


@cache
def _round_members_query(dialect: str) -> AnySelect:
    level = zone_level_of(_zones, building_id=_members.c.building_id, unit_id=_members.c.unit_id)
    # Locked until the tubes are written (in one order, so two writers never deadlock): a
    # tube sent at the same moment for one of these residents then reads them sampled.
    return (
        select(
            _members.c.resident_id,
            _members.c.status,
            _members.c.town_id,
            _members.c.compound_id,
            _members.c.building_id,
            _members.c.resulted_at,
            (level == "sealed").label("sealed"),
        )
        .where(
            _members.c.round_id == bindparam("round_id"),
            among(_members.c.resident_id, "ids", dialect=dialect),
        )
        .order_by(_members.c.resident_id)
        .with_for_update(of=_members)
    )


@cache
def _tubes_by_code_query(dialect: str) -> AnySelect:
    # Codes are unique everywhere: looked up beyond the caller's scope (only the clash is
    # shown).
    return (
        select(_tubes, _tube_members.c.resident_id)
        .outerjoin(_tube_members, _tube_members.c.tube_id == _tubes.c.id)
        .where(among(_tubes.c.code, "ids", dialect=dialect))
        .execution_options(**UNSCOPED)
    )


@cache
def _sites_query(dialect: str) -> AnySelect:
    return select(_sites_.c.id).where(
        _sites_.c.round_id == bindparam("round_id"), among(_sites_.c.id, "ids", dialect=dialect)
    )


async def round_head(uow: UnitOfWork, round_id: uuid.UUID) -> RoundHead:
    """What recording a tube needs of its round, if the caller sees it; otherwise a 404."""
    found = (await uow.session.execute(_ROUND, {"round_id": round_id})).first()
    if found is None:
        raise NotFound(f"no round {round_id} in your scope")
    return found


async def _visible(uow: UnitOfWork, resident_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    found: set[uuid.UUID] = set()
    for chunk in _chunks(resident_ids):
        found.update(await uow.session.scalars(_visible_query(uow.dialect), {"ids": chunk}))
    return found


async def _after_antigen(uow: UnitOfWork, resident_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    found: set[uuid.UUID] = set()
    for chunk in _chunks(resident_ids):
        found.update(await uow.session.scalars(_after_antigen_query(uow.dialect), {"ids": chunk}))
    return found


async def _round_members(
    uow: UnitOfWork, round_: RoundHead, resident_ids: list[uuid.UUID]
) -> dict[uuid.UUID, Member]:
    """The round's members among these residents, each with whether their unit or building
    is sealed now."""
    found: dict[uuid.UUID, Member] = {}
    for chunk in _chunks(resident_ids):
        rows = await uow.session.execute(
            _round_members_query(uow.dialect), {"round_id": round_.id, "ids": chunk}
        )
        found.update((m.resident_id, m) for m in rows.all())
    return found


async def _tubes_by_code(
    uow: UnitOfWork, codes: list[str]
) -> tuple[dict[str, TubeRow], dict[uuid.UUID, list[uuid.UUID]]]:
    """Tubes already recorded under these codes, with their members (to compare only)."""
    found: dict[str, TubeRow] = {}
    members: dict[uuid.UUID, list[uuid.UUID]] = {}
    for chunk in _chunks(codes):
        for row in (
            await uow.session.execute(_tubes_by_code_query(uow.dialect), {"ids": chunk})
        ).all():
            found[row.code] = row
            members.setdefault(row.id, [])
            if row.resident_id is not None:
                members[row.id].append(row.resident_id)
    return found, members


async def _sites(uow: UnitOfWork, round_: RoundHead, site_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    if not site_ids:
        return set()
    return set(
        await uow.session.scalars(
            _sites_query(uow.dialect), {"round_id": round_.id, "ids": site_ids}
        )
    )


def _check_time(round_: RoundHead, tube: TubeIn, *, now: datetime, skew: timedelta) -> None:
    """A swab is taken in its round's window, and not in the future; ``skew`` is the
    tolerance for the sampler's phone's clock. Retests come after the window (checked
    against their member's earlier result instead)."""
    at = tube.collected_at
    if at > now + skew:
        raise TubeRejected("collected_at", f"collected_at {at.isoformat()} is in the future")
    if not tube.retest and not round_.starts_at - skew <= at <= round_.ends_at + skew:
        raise TubeRejected(
            "collected_at",
            f"collected_at {at.isoformat()} is outside the round's window "
            f"({round_.starts_at.isoformat()} to {round_.ends_at.isoformat()})",
        )


def _check_follow_up_time(tube: TubeIn, member: Member, *, skew: timedelta) -> None:
    """A retest or resample swab follows the result that asked for it."""
    asked_at = member.resulted_at
    if member.status in FOLLOW_UPS and asked_at is not None and tube.collected_at < asked_at - skew:
        raise TubeRejected(
            "collected_at",
            f"collected_at {tube.collected_at.isoformat()} is before the result that asked for "
            f"this {'retest' if member.status == MemberStatus.retest_required else 'resample'} "
            f"({asked_at.isoformat()})",
        )


def _check(
    round_: RoundHead,
    tube: TubeIn,
    known: _Known,
    taken: set[uuid.UUID],
    *,
    now: datetime,
    skew: timedelta,
) -> None:
    """Raise :class:`TubeRejected` naming the field when the tube cannot be recorded."""
    _check_time(round_, tube, now=now, skew=skew)
    if tube.site_id is not None and tube.site_id not in known.sites:
        raise TubeRejected(
            "site_id", f"no sampling site {tube.site_id} of this round {OUT_OF_SCOPE}"
        )
    repeated = [m for m, n in Counter(tube.member_ids).items() if n > 1]
    if repeated:
        raise TubeRejected("member_ids", f"resident {repeated[0]} is listed twice in the tube")
    if len(tube.member_ids) > round_.pool_size:
        raise TubeRejected(
            "member_ids",
            f"a pool of {len(tube.member_ids)} is over the round's pool size {round_.pool_size}",
        )
    if tube.retest and len(tube.member_ids) != 1:
        raise TubeRejected("member_ids", "a retest or resample tube holds one person")
    compounds = set()
    for n, resident_id in enumerate(tube.member_ids):
        where = f"member_ids.{n}"
        member = known.members.get(resident_id)
        if member is None:
            if resident_id in known.seen_outside:
                raise TubeRejected(where, f"resident {resident_id} is outside the round's scope")
            raise TubeRejected(where, f"no resident {resident_id} {OUT_OF_SCOPE}")
        if resident_id in taken:
            raise TubeRejected(
                where, f"resident {resident_id} is in another tube of this batch", clash=True
            )
        if tube.retest and not _may_retest(known, member):
            raise TubeRejected(
                where,
                f"resident {resident_id} has no open retest or resample, nor a PCR retest "
                "after a positive antigen test",
            )
        if tube.retest:
            _check_follow_up_time(tube, member, skew=skew)
        if not tube.retest and member.status != MemberStatus.expected.value:
            raise TubeRejected(
                where, f"resident {resident_id} was already sampled in this round ({member.status})"
            )
        if len(tube.member_ids) > 1 and member.sealed:
            raise TubeRejected(
                where, f"resident {resident_id} lives in a sealed area: one person per tube"
            )
        compounds.add(member.compound_id)
    if len(compounds) > 1:
        raise TubeRejected("member_ids", "a tube's members must live in one compound")


def _may_retest(known: _Known, member: Member) -> bool:
    if member.status in FOLLOW_UPS:
        return True
    return (
        member.resident_id in known.after_antigen and member.status != MemberStatus.positive.value
    )


def _same(existing: TubeRow, tube: TubeIn, round_: RoundHead, known: _Known) -> bool:
    members = known.tube_members.get(existing.id, [])
    return existing.round_id == round_.id and set(members) == set(tube.member_ids)


def _identical(first: TubeIn, again: TubeIn) -> bool:
    """The same row twice in a batch (a phone resending a scan inside its offline batch):
    every field alike, the members in any order."""
    return set(first.member_ids) == set(again.member_ids) and first.model_dump(
        exclude={"member_ids"}
    ) == again.model_dump(exclude={"member_ids"})


async def record_tubes(
    uow: UnitOfWork,
    *,
    round_id: uuid.UUID,
    tubes: Sequence[TubeIn],
    skew: timedelta,
    recorded_by: Sequence[str] | None = None,
) -> Outcome:
    """Record a batch of tubes; each bad one becomes an error naming its field. ``skew`` is
    the tolerance for the samplers' clocks (settings' ``clock_skew``); ``recorded_by`` names
    each tube's sender when they are not all the unit of work's caller."""
    now = datetime.now(UTC)
    round_ = await round_head(uow, round_id)
    place = Place(round_.town_id, round_.committee_id, round_.compound_id, round_.building_id)
    SAMPLE.check(uow, place)
    if round_.status != RoundStatus.open.value:
        raise Conflict(f"round {round_.name} is {round_.status}, not open for sampling")
    known = await _read(uow, round_, tubes)
    outcome = Outcome(place=place)
    taken: set[uuid.UUID] = set()
    # The first row of each code: a later identical row is answered as that row was.
    first_rows: dict[str, tuple[int, TubeIn]] = {}
    fresh: list[tuple[Tube, TubeIn]] = []
    for row, tube in enumerate(tubes):
        existing = known.tubes.get(tube.code)
        try:
            first_row, first = first_rows.setdefault(tube.code, (row, tube))
            if first_row != row:
                if not _identical(first, tube):
                    raise TubeRejected(
                        "code", f"tube code {tube.code} appears twice in the batch", clash=True
                    )
                _as_first(outcome, row, first_row=first_row)
                continue
            if existing is not None:
                if not _same(existing, tube, round_, known):
                    raise TubeRejected("code", f"tube code {tube.code} is already used")
                outcome.unchanged.append(existing)
                outcome.by_row[row] = existing
                continue
            _check(round_, tube, known, taken, now=now, skew=skew)
        except TubeRejected as rejected:
            if rejected.clash:
                outcome.clashes.add(row)
            outcome.errors.append(
                {
                    "row": row,
                    "code": tube.code,
                    "field": rejected.field,
                    "message": rejected.message,
                }
            )
            continue
        taken.update(tube.member_ids)
        sender = recorded_by[row] if recorded_by is not None else uow.principal.username
        fresh.append((_tube(round_, tube, known, recorded_by=sender), tube))
        outcome.by_row[row] = fresh[-1][0]
    await _write(uow, fresh, known)
    outcome.accepted = [t for t, _ in fresh]
    return outcome


def _as_first(outcome: Outcome, row: int, *, first_row: int) -> None:
    """An identical repeat of an earlier row: its tube, unchanged; or that row's error."""
    tube = outcome.by_row.get(first_row)
    if tube is not None:
        outcome.unchanged.append(tube)
        outcome.by_row[row] = tube
        return
    [error] = [e for e in outcome.errors if e["row"] == first_row]
    outcome.errors.append({**error, "row": row})
    if first_row in outcome.clashes:
        outcome.clashes.add(row)


def _tube(round_: RoundHead, tube: TubeIn, known: _Known, *, recorded_by: str) -> Tube:
    members = [known.members[m] for m in tube.member_ids]
    buildings = {m.building_id for m in members}
    return Tube(
        id=new_id(),
        round_id=round_.id,
        code=tube.code,
        pooled=len(members) > 1,
        retest=tube.retest,
        size=len(members),
        site_id=tube.site_id,
        collector=tube.collector,
        collected_at=tube.collected_at,
        recorded_by=recorded_by,
        status="collected",
        town_id=members[0].town_id,
        compound_id=members[0].compound_id,
        building_id=buildings.pop() if len(buildings) == 1 else None,
    )


# A group's tubes, their members and the members they sample, each written by one statement
# whatever the group's size (``Rows``).
_TUBE_ROWS = Rows.of(_tubes, name="new_tubes")
_PAIR_ROWS = Rows(
    "pairs",
    {
        "tube_id": _tube_members.c.tube_id.type,
        "resident_id": _tube_members.c.resident_id.type,
        "round_id": _tube_members.c.round_id.type,
        "town_id": _tube_members.c.town_id.type,
        "compound_id": _tube_members.c.compound_id.type,
        "building_id": _tube_members.c.building_id.type,
        "sampled_at": _members.c.sampled_at.type,
    },
)


@cache
def _insert_tubes(dialect: str) -> Any:
    rows = _TUBE_ROWS.source(dialect)
    return _tubes.insert().from_select(list(rows.c.keys()), select(*rows.c))


@cache
def _insert_tube_members(dialect: str) -> Any:
    rows = _PAIR_ROWS.source(dialect)
    columns = [c.key for c in _tube_members.columns if c.key in _PAIR_ROWS.columns]
    return _tube_members.insert().from_select(columns, select(*(rows.c[c] for c in columns)))


@cache
def _mark_sampled(dialect: str) -> Any:
    rows = _PAIR_ROWS.source(dialect)
    return (
        update(_members)
        .where(_members.c.round_id == rows.c.round_id, _members.c.resident_id == rows.c.resident_id)
        .values(
            status=case(
                (
                    _members.c.status == MemberStatus.retest_required.value,
                    MemberStatus.retest_sampled.value,
                ),
                else_=MemberStatus.sampled.value,
            ),
            tube_id=rows.c.tube_id,
            sampled_at=rows.c.sampled_at,
        )
    )


@cache
def _write_all(dialect: str) -> Any:
    """The tubes, their members and the members they sample, as one statement (PostgreSQL's
    data-modifying ``WITH``; the foreign keys are checked when the whole of it is done)."""
    return (
        _mark_sampled(dialect)
        .add_cte(_insert_tubes(dialect).cte("tubes_written"))
        .add_cte(_insert_tube_members(dialect).cte("members_written"))
    )


_FOLLOW_UPS_DONE = (
    update(_tasks)
    .where(
        or_(
            _tasks.c.round_id == bindparam("b_round"),
            # A PCR retest after antigen belongs to no round until it is sampled.
            and_(_tasks.c.kind == AFTER_ANTIGEN, _tasks.c.round_id.is_(None)),
        ),
        _tasks.c.resident_id == bindparam("b_resident"),
        _tasks.c.status == TaskStatus.open.value,
    )
    .values(
        round_id=bindparam("b_round"),
        status=TaskStatus.done.value,
        done_at=bindparam("b_at"),
        done_tube_id=bindparam("b_tube"),
    )
)


async def _write(uow: UnitOfWork, fresh: Sequence[tuple[Tube, TubeIn]], known: _Known) -> None:
    if not fresh:
        return
    # Core statements: the tubes are answered as they were built, never changed here.
    dialect = uow.dialect
    tubes = [tube for tube, _ in fresh]
    written = _TUBE_ROWS.bind(
        {key: [getattr(t, key) for t in tubes] for key in _TUBE_ROWS.columns}, dialect=dialect
    )
    pairs = [(tube, resident_id) for tube, data in fresh for resident_id in data.member_ids]
    columns: dict[str, list[Any]] = {
        "tube_id": [t.id for t, _ in pairs],
        "resident_id": [r for _, r in pairs],
        "round_id": [t.round_id for t, _ in pairs],
        "town_id": [t.town_id for t, _ in pairs],
        "compound_id": [t.compound_id for t, _ in pairs],
        "building_id": [known.members[r].building_id for _, r in pairs],
        "sampled_at": [t.collected_at for t, _ in pairs],
    }
    sampled = _PAIR_ROWS.bind(columns, dialect=dialect)
    if dialect == "postgresql":
        # The three writes are one statement (one round trip for the group).
        assert isinstance(written, dict) and isinstance(sampled, dict)
        await uow.session.execute(_write_all(dialect), {**written, **sampled})
    else:
        await uow.session.execute(_insert_tubes(dialect), written)
        await uow.session.execute(_insert_tube_members(dialect), sampled)
        await uow.session.execute(_mark_sampled(dialect), sampled)
    follow_ups = [(tube, data.member_ids[0]) for tube, data in fresh if data.retest]
    if follow_ups:
        await uow.session.execute(
            _FOLLOW_UPS_DONE,
            [
                {
                    "b_round": tube.round_id,
                    "b_resident": resident_id,
                    "b_tube": tube.id,
                    "b_at": tube.collected_at,
                }
                for tube, resident_id in follow_ups
            ],
        )


async def record_tube(
    uow: UnitOfWork, *, round_id: uuid.UUID, tube: TubeIn, skew: timedelta
) -> Tube | TubeRow:
    """One tube: recorded, or the same tube again (unchanged, as stored); otherwise a
    problem naming the field."""
    outcome = await record_tubes(uow, round_id=round_id, tubes=[tube], skew=skew)
    if outcome.errors:
        _refuse(outcome.errors[0])
    return outcome.by_row[0]


def _refuse(error: dict[str, Any]) -> NoReturn:
    errors = [{"field": error["field"], "message": error["message"]}]
    if error["field"] == "code" or "already" in error["message"]:
        raise Conflict(error["message"], errors=errors)
    raise rows_rejected(error["message"], errors)


@dataclass(frozen=True)
class _Answer:
    """What a group decided for one of its tubes: the tube (recorded now or before), or the
    refusal naming the field, and the round's place, where the policy was checked."""

    place: Place
    tube: Tube | TubeRow | None = None
    error: dict[str, Any] | None = None
    # A keyed tube's answer, as stored with the group.
    shown: Answer | None = None


# How a tube's answer is shown to its caller (serialised).
Render = Callable[[Tube | TubeRow], Answer]


@dataclass(frozen=True)
class _Sent:
    """A single tube as its request sent it, and who sent it; and, sent with a key, the key
    and how its answer is shown (stored with the group)."""

    tube: TubeIn
    principal: Principal
    keyed: KeyedWrite | None = None
    render: Render | None = None


# Tubes share a group when the same reads and the same policy check hold for each of them:
# their round, the caller's role and scope, and the clock tolerance.
_GroupKey = tuple[uuid.UUID, Role, Scope, timedelta]


class TubeDesk:
    """Single tubes arriving together are written together (group commit, by
    :class:`shared.desk.Desk`).

    A burst of single tubes from a sampling site pays per statement and per commit, not per
    tube. While a group is being written, the tubes that arrive for the same round from
    callers of the same role and scope wait, and go as the next group through the batch path
    (:func:`record_tubes`) in one transaction; the first tube after a quiet moment goes at
    once, as a group of one. Each request is answered once its group has committed, with its
    own tube or its own refusal. What a group cannot answer as the request alone would be
    answered (a clash with another tube of the group, a round that is not open, a failed
    commit) is recorded alone afterwards, on the request's own unit of work: a tube sent
    again is answered as recorded, so nothing is recorded twice.

    A tube sent with an ``Idempotency-Key`` has its answer stored in the group's
    transaction, with the tube. One whose key is stored already (a retry), or sent twice in
    one group, goes alone, where the boundary answers it as first answered."""

    def __init__(self, open_uow: Callable[[Principal], UnitOfWork], *, answers: Table) -> None:
        self._open_uow = open_uow
        self._answers = answers
        self._desk: Desk[_GroupKey, _Sent, _Answer] = Desk(self._write, what="tubes")

    async def record(
        self,
        uow: UnitOfWork,
        *,
        round_id: uuid.UUID,
        tube: TubeIn,
        skew: timedelta,
        render: Render,
        keyed: KeyedWrite | None = None,
    ) -> Answer:
        """As :func:`record_tube`, in the next group of this round, role and scope; the
        answer as ``render`` shows it."""
        principal = uow.principal
        key = (round_id, principal.role, principal.scope, skew)
        answer = await self._desk.submit(key, _Sent(tube, principal, keyed=keyed, render=render))
        if answer is None:
            return render(await record_tube(uow, round_id=round_id, tube=tube, skew=skew))
        # The group checked the policy for this role and scope; the request's own unit of
        # work records the check as the boundary expects.
        SAMPLE.check(uow, answer.place)
        if answer.error is not None:
            _refuse(answer.error)
        assert answer.tube is not None
        if answer.shown is not None and keyed is not None:
            keyed.stored = True
            return answer.shown
        return render(answer.tube)

    async def _write(self, key: _GroupKey, group: list[_Sent]) -> list[_Answer | None]:
        round_id, _, _, skew = key
        try:
            async with self._open_uow(group[0].principal) as uow:
                alone = await resent(uow, self._answers, [sent.keyed for sent in group])
                sending = [n for n in range(len(group)) if n not in alone]
                if not sending:
                    return [None] * len(group)
                outcome = await record_tubes(
                    uow,
                    round_id=round_id,
                    tubes=[group[n].tube for n in sending],
                    skew=skew,
                    recorded_by=[group[n].principal.username for n in sending],
                )
                answers = _answers(group, sending, outcome)
                # A key stored meanwhile (a retry racing its first attempt) fails the group
                # here, before its commit: then each tube goes alone.
                await store_answers(
                    uow,
                    self._answers,
                    [
                        (sent.keyed, answer.shown)
                        for sent, answer in zip(group, answers, strict=True)
                        if sent.keyed is not None and answer is not None and answer.shown
                    ],
                )
                await uow.commit()
        except Problem:
            # The round's own answer (not found, not open): each hears it alone.
            return [None] * len(group)
        return answers


def _answers(group: list[_Sent], sending: list[int], outcome: Outcome) -> list[_Answer | None]:
    """Each tube's answer from its group's outcome (``None``: it goes alone), a keyed
    tube's shown as it is stored."""
    assert outcome.place is not None
    errors = {e["row"]: e for e in outcome.errors}
    answers: list[_Answer | None] = [None] * len(group)
    for row, n in enumerate(sending):
        if row in outcome.clashes:
            continue
        tube, error, sent = outcome.by_row.get(row), errors.get(row), group[n]
        shown = None
        if sent.keyed is not None and tube is not None and error is None:
            assert sent.render is not None
            shown = sent.render(tube)
        answers[n] = _Answer(place=outcome.place, tube=tube, error=error, shown=shown)
    return answers


async def members_of(
    uow: UnitOfWork, tube_ids: Sequence[uuid.UUID], *, unscoped: bool = False
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """The residents in each tube (``unscoped`` only to compare, never to show)."""
    found: dict[uuid.UUID, list[uuid.UUID]] = {t: [] for t in tube_ids}
    options = UNSCOPED if unscoped else {}
    for chunk in _chunks(list(tube_ids)):
        query = select(TubeMember.tube_id, TubeMember.resident_id).where(
            TubeMember.tube_id.in_(chunk)
        )
        rows = await uow.session.execute(query.execution_options(**options))
        for tube_id, resident_id in rows.all():
            found[tube_id].append(resident_id)
    return found
