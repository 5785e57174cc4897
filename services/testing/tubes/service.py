"""Recording sampled tubes from staff clients, one at a time or as a batch recorded offline.

Each tube is checked on its own: a bad tube is reported by its row and the good ones are
kept. A tube already recorded with the same content is accepted again without change, so a
client on a weak network can resend a batch safely."""

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, bindparam, case, exists, or_, select, update

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
from shared.auth import UNSCOPED
from shared.authz import Place
from shared.db import table_of
from shared.ids import new_id
from shared.problems import OUT_OF_SCOPE, Conflict, rows_rejected
from shared.uow import UnitOfWork

FOLLOW_UPS = frozenset({MemberStatus.retest_required.value, MemberStatus.resample_required.value})
AFTER_ANTIGEN = TaskKind.pcr_after_antigen.value
# Ids per IN list, well under SQLite's bound-parameter limit.
CHUNK = 5_000
# A round member as the checks read it: resident_id, status, places, sealed.
Member = Row[*tuple[Any, ...]]


class TubeRejected(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass
class Outcome:
    accepted: list[Tube] = field(default_factory=list)
    unchanged: list[Tube] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Known:
    """What the checks need, read once for the whole batch (members as plain rows: a burst
    of tubes should not pay for ORM objects it never changes)."""

    members: dict[uuid.UUID, Member]
    tubes: dict[str, Tube]
    tube_members: dict[uuid.UUID, list[uuid.UUID]]
    sites: set[uuid.UUID]
    # Residents with an open PCR retest after a positive antigen self-test.
    after_antigen: set[uuid.UUID]
    # Named residents who are no members but whom the caller can see (outside the round,
    # rather than outside the caller's scope).
    seen_outside: set[uuid.UUID] = field(default_factory=set)


def _chunks(ids: Sequence[Any]) -> list[Sequence[Any]]:
    return [ids[n : n + CHUNK] for n in range(0, len(ids), CHUNK)]


async def _read(uow: UnitOfWork, round_: Round, tubes: Sequence[TubeIn]) -> _Known:
    after_antigen = await _after_antigen(uow, list({t.member_ids[0] for t in tubes if t.retest}))
    if after_antigen:
        # Someone who tested positive on antigen is sampled wherever a round is open,
        # joining it if its scope covers them.
        await add_members(uow, round_, resident_ids=list(after_antigen))
    known_tubes, tube_members = await _tubes_by_code(uow, list({t.code for t in tubes}))
    named = list({m for t in tubes for m in t.member_ids})
    members = await _round_members(uow, round_, named)
    return _Known(
        members=members,
        tubes=known_tubes,
        tube_members=tube_members,
        sites=await _sites(uow, round_, list({t.site_id for t in tubes if t.site_id})),
        after_antigen=after_antigen,
        seen_outside=await _visible(uow, [m for m in named if m not in members]),
    )


async def _visible(uow: UnitOfWork, resident_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    found: set[uuid.UUID] = set()
    for chunk in _chunks(resident_ids):
        query = select(DirectoryResident.id).where(DirectoryResident.id.in_(chunk))
        found.update(await uow.session.scalars(query))
    return found


async def _after_antigen(uow: UnitOfWork, resident_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    found: set[uuid.UUID] = set()
    for chunk in _chunks(resident_ids):
        query = select(Task.resident_id).where(
            Task.kind == AFTER_ANTIGEN,
            Task.status == TaskStatus.open.value,
            Task.resident_id.in_(chunk),
        )
        found.update(await uow.session.scalars(query))
    return found


async def _round_members(
    uow: UnitOfWork, round_: Round, resident_ids: list[uuid.UUID]
) -> dict[uuid.UUID, Member]:
    """The round's members among these residents, each with whether their unit or building
    is sealed now."""
    sealed = exists().where(
        DirectoryZone.level == "sealed",
        DirectoryZone.building_id == RoundMember.building_id,
        or_(DirectoryZone.unit_id.is_(None), DirectoryZone.unit_id == RoundMember.unit_id),
    )
    found: dict[uuid.UUID, Member] = {}
    for chunk in _chunks(resident_ids):
        query = select(
            RoundMember.resident_id,
            RoundMember.status,
            RoundMember.town_id,
            RoundMember.compound_id,
            RoundMember.building_id,
            RoundMember.resulted_at,
            sealed.label("sealed"),
        ).where(RoundMember.round_id == round_.id, RoundMember.resident_id.in_(chunk))
        found.update((m.resident_id, m) for m in (await uow.session.execute(query)).all())
    return found


async def _tubes_by_code(
    uow: UnitOfWork, codes: list[str]
) -> tuple[dict[str, Tube], dict[uuid.UUID, list[uuid.UUID]]]:
    """Tubes already recorded under these codes, with their members (to compare only)."""
    found: dict[str, Tube] = {}
    members: dict[uuid.UUID, list[uuid.UUID]] = {}
    for chunk in _chunks(codes):
        # Codes are unique everywhere: look beyond the caller's scope, show only the clash.
        query = (
            select(Tube, TubeMember.resident_id)
            .outerjoin(TubeMember, TubeMember.tube_id == Tube.id)
            .where(Tube.code.in_(chunk))
            .execution_options(**UNSCOPED)
        )
        for tube, resident_id in (await uow.session.execute(query)).all():
            found[tube.code] = tube
            members.setdefault(tube.id, [])
            if resident_id is not None:
                members[tube.id].append(resident_id)
    return found, members


async def _sites(uow: UnitOfWork, round_: Round, site_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    if not site_ids:
        return set()
    query = select(Site.id).where(Site.round_id == round_.id, Site.id.in_(site_ids))
    return set(await uow.session.scalars(query))


def _check_time(round_: Round, tube: TubeIn, *, now: datetime, skew: timedelta) -> None:
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
    round_: Round,
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
            raise TubeRejected(where, f"resident {resident_id} is in another tube of this batch")
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


def _same(existing: Tube, tube: TubeIn, round_: Round, known: _Known) -> bool:
    members = known.tube_members.get(existing.id, [])
    return existing.round_id == round_.id and set(members) == set(tube.member_ids)


async def record_tubes(
    uow: UnitOfWork, *, round_id: uuid.UUID, tubes: Sequence[TubeIn], skew: timedelta
) -> Outcome:
    """Record a batch of tubes; each bad one becomes an error naming its field. ``skew`` is
    the tolerance for the samplers' clocks (settings' ``clock_skew``)."""
    now = datetime.now(UTC)
    round_ = await get_round(uow, round_id)
    SAMPLE.check(uow, Place.of(round_))
    if round_.status != RoundStatus.open.value:
        raise Conflict(f"round {round_.name} is {round_.status}, not open for sampling")
    known = await _read(uow, round_, tubes)
    outcome = Outcome()
    taken: set[uuid.UUID] = set()
    seen_codes: set[str] = set()
    fresh: list[tuple[Tube, TubeIn]] = []
    for row, tube in enumerate(tubes):
        existing = known.tubes.get(tube.code)
        try:
            if tube.code in seen_codes:
                raise TubeRejected("code", f"tube code {tube.code} appears twice in the batch")
            seen_codes.add(tube.code)
            if existing is not None:
                if not _same(existing, tube, round_, known):
                    raise TubeRejected("code", f"tube code {tube.code} is already used")
                outcome.unchanged.append(existing)
                continue
            _check(round_, tube, known, taken, now=now, skew=skew)
        except TubeRejected as rejected:
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
        fresh.append((_tube(uow, round_, tube, known), tube))
    await _write(uow, fresh, known)
    outcome.accepted = [t for t, _ in fresh]
    return outcome


def _tube(uow: UnitOfWork, round_: Round, tube: TubeIn, known: _Known) -> Tube:
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
        recorded_by=uow.principal.username,
        status="collected",
        town_id=members[0].town_id,
        compound_id=members[0].compound_id,
        building_id=buildings.pop() if len(buildings) == 1 else None,
    )


async def _write(uow: UnitOfWork, fresh: Sequence[tuple[Tube, TubeIn]], known: _Known) -> None:
    if not fresh:
        return
    # Core inserts: the tubes are answered as they were built, never changed in this request.
    tubes = table_of(Tube)
    await uow.session.execute(
        tubes.insert(), [{c.key: getattr(tube, c.key) for c in tubes.columns} for tube, _ in fresh]
    )
    pairs = [(tube, resident_id) for tube, data in fresh for resident_id in data.member_ids]
    await uow.session.execute(
        table_of(TubeMember).insert(),
        [
            {
                "tube_id": tube.id,
                "resident_id": resident_id,
                "round_id": tube.round_id,
                "town_id": tube.town_id,
                "compound_id": tube.compound_id,
                "building_id": known.members[resident_id].building_id,
            }
            for tube, resident_id in pairs
        ],
    )
    members = table_of(RoundMember)
    await uow.session.execute(
        update(members)
        .where(
            members.c.round_id == bindparam("b_round"),
            members.c.resident_id == bindparam("b_resident"),
        )
        .values(
            status=case(
                (
                    members.c.status == MemberStatus.retest_required.value,
                    MemberStatus.retest_sampled.value,
                ),
                else_=MemberStatus.sampled.value,
            ),
            tube_id=bindparam("b_tube"),
            sampled_at=bindparam("b_at"),
        ),
        [
            {
                "b_round": tube.round_id,
                "b_resident": resident_id,
                "b_tube": tube.id,
                "b_at": tube.collected_at,
            }
            for tube, resident_id in pairs
        ],
    )
    follow_ups = [(tube, data.member_ids[0]) for tube, data in fresh if data.retest]
    if follow_ups:
        tasks = table_of(Task)
        await uow.session.execute(
            update(tasks)
            .where(
                or_(
                    tasks.c.round_id == bindparam("b_round"),
                    # A PCR retest after antigen belongs to no round until it is sampled.
                    and_(tasks.c.kind == AFTER_ANTIGEN, tasks.c.round_id.is_(None)),
                ),
                tasks.c.resident_id == bindparam("b_resident"),
                tasks.c.status == TaskStatus.open.value,
            )
            .values(
                round_id=bindparam("b_round"),
                status=TaskStatus.done.value,
                done_at=bindparam("b_at"),
                done_tube_id=bindparam("b_tube"),
            ),
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
) -> Tube:
    """One tube: recorded, or the same tube again (unchanged); otherwise a problem naming
    the field."""
    outcome = await record_tubes(uow, round_id=round_id, tubes=[tube], skew=skew)
    if outcome.errors:
        error = outcome.errors[0]
        errors = [{"field": error["field"], "message": error["message"]}]
        if error["field"] == "code" or "already" in error["message"]:
            raise Conflict(error["message"], errors=errors)
        raise rows_rejected(error["message"], errors)
    return (outcome.accepted or outcome.unchanged)[0]


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
