"""Help requests and errands: a resident's request gets its priority from its kind and the
resident's tags and a due time from the town's targets; it is assigned (a suggestion ranks
the volunteers around the building), run, done, and closed by the building leader's
confirmation for the resident. A periodic job raises ``logistics.request.overdue`` once per
level: overdue at the due time, then to the grid leader, then to the town operator, each a
further interval later while the request stays open."""

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Table, select, update

from services.logistics.models import HelpRequest, RequestEscalation, RequestSettings
from services.logistics.requests import repository, rules, schemas
from shared.auth import Principal
from shared.authz import FIELD, MANAGERS, Place, Role, Scope, policy
from shared.contracts.logistics import (
    RequestAssigned,
    RequestCancelled,
    RequestClosed,
    RequestCreated,
    RequestDone,
    RequestEvent,
    RequestOverdue,
    RequestStarted,
)
from shared.db import insert_ignoring_duplicates, table_of
from shared.desk import Desk
from shared.idempotency import Answer, KeyedWrite, resent, store_answers
from shared.ids import new_id
from shared.observability import correlation_id
from shared.problems import Conflict, Invalid, NotFound, Problem
from shared.uow import UnitOfWork

LEADERS = (Role.grid_leader, Role.building_leader)
# Staff and building leaders enter requests for residents and hand them out.
CREATE = policy("help requests", "create", *MANAGERS, *LEADERS)
ASSIGN = policy("help requests", "assign", *MANAGERS, *LEADERS)
# Whoever runs the errand moves it along (a volunteer only sees their own).
WORK = policy("help requests", "run", *FIELD)
# The resident's confirmation, given by their building leader (or staff).
CONFIRM = policy("help requests", "confirm", *MANAGERS, *LEADERS)
CANCEL = policy("help requests", "cancel", *MANAGERS, *LEADERS)
# Which state each action needs, and what it makes.
STEPS: dict[str, tuple[frozenset[str], str]] = {
    "assign": (frozenset({"open", "assigned"}), "assigned"),
    "start": (frozenset({"assigned"}), "in_progress"),
    "done": (frozenset({"in_progress"}), "done"),
    "confirm": (frozenset({"done"}), "closed"),
    "cancel": (frozenset(repository.OPEN), "cancelled"),
}
LEVELS = {1: "compound", 2: "grid_leader", 3: "town_operator"}


def event(kind: type[RequestEvent], request: Any, *, at: datetime, **extra: Any) -> Any:
    """The event of a change of the request (a row or anything with its columns)."""
    return kind(
        request_id=request.id,
        revision=request.revision,
        town_id=request.town_id,
        compound_id=request.compound_id,
        building_id=request.building_id,
        resident_id=request.resident_id,
        kind=request.kind,
        priority=request.priority,
        status=request.status,
        due_at=request.due_at,
        at=at,
        **extra,
    )


def request_row(
    resident: repository.Subject,
    *,
    kind: str,
    reason: str | None,
    details: str,
    hospital: str | None,
    household_tags: set[str],
    created_by: str,
    now: datetime,
    due_at: datetime | None = None,
    attachments: Sequence[str] = (),
    recurrence_id: uuid.UUID | None = None,
    occurs_on: date | None = None,
) -> dict[str, Any]:
    """The row of a new request for the resident: its priority and due time (``due_at``
    given for a recurring occurrence: its time)."""
    level = rules.priority(
        kind=kind, reason=reason, tags=set(resident.tags), household_tags=household_tags
    )
    targets = resident.targets
    due = due_at or now + rules.target(
        level, urgent=targets.urgent, high=targets.high, normal=targets.normal
    )
    return {
        **EMPTY,
        "id": new_id(),
        "resident_id": resident.id,
        "household_id": resident.household_id,
        "unit_id": resident.unit_id,
        "town_id": resident.town_id,
        "committee_id": resident.committee_id,
        "compound_id": resident.compound_id,
        "building_id": resident.building_id,
        "kind": kind,
        "reason": reason,
        "details": details,
        "attachments": list(attachments),
        "hospital": hospital.strip() if hospital else None,
        "priority": level,
        "status": "open",
        "due_at": due,
        "next_escalation_at": due,
        "escalation_level": 0,
        "revision": 1,
        "created_by": created_by,
        "created_at": now,
        "recurrence_id": recurrence_id,
        "occurs_on": occurs_on,
    }


# Every column of a request, empty: what a new row holds before its values.
EMPTY: dict[str, Any] = {column.key: None for column in repository.requests.columns}


# The kinds whose priority depends on the resident's household (an infant in it).
HOUSEHOLD_KINDS = frozenset({"baby_supplies"})


async def for_kind(uow: UnitOfWork, resident: repository.Subject, kind: str) -> set[str]:
    """The tags of the resident's household, when the kind's priority depends on them."""
    if kind not in HOUSEHOLD_KINDS:
        return set()
    return await repository.household_tags(uow, resident.household_id)


async def create(uow: UnitOfWork, *, data: schemas.RequestCreate) -> schemas.RequestOut:
    """Enter a resident's request: one statement finds the resident, their address and their
    town's targets, one Core insert writes it, and the answer is built from what is known."""
    (entered,) = await _enter_all(uow, [_Asked(data, uow.principal, correlation_id.get())])
    if isinstance(entered, Problem):
        raise entered
    await uow.session.execute(repository.INSERT_REQUEST, entered.row)
    return entered.answer


@dataclass(frozen=True)
class _Entered:
    """A request entered on a unit of work, not written yet: its row, its answer in clear,
    and the place its policy was checked on."""

    row: dict[str, Any]
    answer: schemas.RequestOut
    place: Place


def _entered(
    uow: UnitOfWork,
    data: schemas.RequestCreate,
    resident: repository.Subject,
    *,
    household_tags: set[str],
    created_by: str,
) -> _Entered:
    """The request of a resident found and checked: its row, its answer and its event."""
    now = datetime.now(UTC)
    row = request_row(
        resident,
        kind=data.kind,
        reason=data.reason,
        details=data.details,
        hospital=data.hospital,
        household_tags=household_tags,
        attachments=data.attachments,
        created_by=created_by,
        now=now,
    )
    request = SimpleNamespace(**row)
    uow.emit(
        event(RequestCreated, request, at=now, reason=data.reason),
        compound_id=request.compound_id,
        urgent=request.priority == "urgent",
    )
    return _Entered(row, answer(request, resident.who, now=now, volunteer=False), _place(resident))


# How a creation's answer is shown to its caller (masked by the presenter, serialised).
Render = Callable[[schemas.RequestOut], Awaitable[Answer]]


@dataclass(frozen=True)
class _Asked:
    """One creation waiting at the desk: what was sent, by whom, in which correlation; and,
    sent with a key, the key and how its answer is shown (stored with the group)."""

    data: schemas.RequestCreate
    principal: Principal
    correlation: str
    keyed: KeyedWrite | None = None
    render: Render | None = None


@dataclass(frozen=True)
class _Outcome:
    """What a group decided for one creation: its answer and the place its policy was
    checked on, or its refusal, or the failure of the group's commit."""

    entered: _Entered | None = None
    refusal: Problem | None = None
    failure: BaseException | None = None
    # A keyed creation's answer, as stored with the group.
    shown: Answer | None = None


# Creations share a group when the same reads and the same policy check hold for each: the
# caller's role and scope.
_GroupKey = tuple[Role, Scope]


class RequestDesk:
    """Creations arriving together are written together: one transaction, one insert, one
    commit for a group (:class:`shared.desk.Desk`). Each is checked as it would be alone
    (the resident found in the caller's scope, the policy on their place) and answered with
    its own request or its own refusal, once its group has committed; its event carries its
    own correlation id.

    A creation sent with an ``Idempotency-Key`` has its answer stored in the group's
    transaction, with the request it created. One whose key is stored already (a retry), or
    sent twice in one group, goes alone, where the boundary answers it as first answered."""

    def __init__(self, open_uow: Callable[[Principal], UnitOfWork], *, answers: Table) -> None:
        self._open_uow = open_uow
        self._answers = answers
        self._desk: Desk[_GroupKey, _Asked, _Outcome] = Desk(self._write, what="help requests")

    async def create(
        self,
        uow: UnitOfWork,
        *,
        data: schemas.RequestCreate,
        render: Render,
        keyed: KeyedWrite | None = None,
    ) -> Answer:
        """As :func:`create`, in the next group of the caller's role and scope; the answer as
        ``render`` shows it."""
        principal = uow.principal
        asked = _Asked(data, principal, correlation_id.get(), keyed=keyed, render=render)
        outcome = await self._desk.submit((principal.role, principal.scope), asked)
        if outcome is None:
            return await render(await create(uow, data=data))
        if outcome.failure is not None:
            raise outcome.failure
        if outcome.refusal is not None:
            raise outcome.refusal
        assert outcome.entered is not None
        # The group checked the policy for this role and scope; the request's own unit of
        # work records the check, as the boundary expects of a write.
        CREATE.check(uow, outcome.entered.place, field="resident_id")
        if outcome.shown is not None and keyed is not None:
            keyed.stored = True
            return outcome.shown
        return await render(outcome.entered.answer)

    async def _write(self, key: _GroupKey, group: list[_Asked]) -> list[_Outcome | None]:
        async with self._open_uow(group[0].principal) as uow:
            alone = await resent(uow, self._answers, [a.keyed for a in group])
            entering = [a for n, a in enumerate(group) if n not in alone]
            if not entering:
                return [None] * len(group)
            outcomes = iter(
                _Outcome(refusal=e) if isinstance(e, Problem) else _Outcome(entered=e)
                for e in await _enter_all(uow, entering)
            )
            decided = [None if n in alone else next(outcomes) for n in range(len(group))]
            rows = [o.entered.row for o in decided if o is not None and o.entered is not None]
            if rows:
                await uow.session.execute(repository.INSERT_REQUEST, rows)
            decided = [await _shown(a, o) for a, o in zip(group, decided, strict=True)]
            # A key stored meanwhile (a retry racing its first attempt) fails the group here,
            # before its commit: then each creation goes alone.
            await store_answers(
                uow,
                self._answers,
                [
                    (a.keyed, o.shown)
                    for a, o in zip(group, decided, strict=True)
                    if a.keyed is not None and o is not None and o.shown is not None
                ],
            )
            try:
                await uow.commit()
            except Exception as exc:
                # Committed or not, nobody can tell: each creation fails as it would alone,
                # none is done again.
                return [
                    _Outcome(failure=exc) if o is not None and o.entered else o for o in decided
                ]
        return decided


async def _shown(asked: _Asked, outcome: _Outcome | None) -> _Outcome | None:
    """A keyed creation's outcome with its answer as shown (to store with the group)."""
    if outcome is None or outcome.entered is None or asked.keyed is None:
        return outcome
    assert asked.render is not None
    return replace(outcome, shown=await asked.render(outcome.entered.answer))


async def _enter_all(uow: UnitOfWork, asked: Sequence[_Asked]) -> list[_Entered | Problem]:
    """Each creation found (404 naming the field), checked against the policy on its
    resident's place, its row, answer and event made (in the correlation of the request
    that sent it), or its refusal. The residents are read in one statement, the households
    a formula's priority depends on in another, whether one creation or a group."""
    known = await repository.subjects(uow, [a.data.resident_id for a in asked])
    households = await repository.households_tags(
        uow,
        (
            found.household_id
            for a in asked
            if a.data.kind in HOUSEHOLD_KINDS
            and (found := known.get(a.data.resident_id)) is not None
            and found.household_id is not None
        ),
    )
    entered: list[_Entered | Problem] = []
    for a in asked:
        token = correlation_id.set(a.correlation)
        try:
            resident = known.get(a.data.resident_id)
            if resident is None:
                raise repository.missing(a.data.resident_id, field="resident_id")
            CREATE.check(uow, _place(resident), field="resident_id")
            tags = households.get(resident.household_id, set()) if resident.household_id else set()
            household = tags if a.data.kind in HOUSEHOLD_KINDS else set()
            entered.append(
                _entered(
                    uow, a.data, resident, household_tags=household, created_by=a.principal.username
                )
            )
        except Problem as refusal:
            entered.append(refusal)
        finally:
            correlation_id.reset(token)
    return entered


def _place(row: Any) -> Place:
    return Place(row.town_id, row.committee_id, row.compound_id, row.building_id)


def _step(request: HelpRequest, action: str) -> str:
    allowed, becomes = STEPS[action]
    if request.status not in allowed:
        wanted = " or ".join(sorted(allowed))
        raise Conflict(
            f"cannot {action} a request that is {request.status}; it must be {wanted}",
            errors=[{"field": "status", "message": f"the request is {request.status}"}],
        )
    return becomes


# Where a medicine run's card is while it is out, as the committee says it.
CARD_OUT = {"collected": "with the volunteer", "at_hospital": "at the hospital"}


def _refuse_if_card_out(request: HelpRequest) -> None:
    """A medicine run is not done, closed or called off while the resident's insurance card
    is out: its return is recorded first (``POST /card``), by whoever hands it back, so no
    card is left unaccounted for on a finished errand. 409 naming where the card is."""
    where = CARD_OUT.get(request.card_status or "")
    if where is not None:
        message = f"the insurance card is still {where}: return it to the resident first"
        raise Conflict(
            f"{message} (record it returned at /v1/requests/{request.id}/card)",
            errors=[{"field": "card.status", "message": message}],
        )


async def assign(uow: UnitOfWork, *, request_id: uuid.UUID, data: schemas.Assign) -> HelpRequest:
    request = await repository.locked(uow, request_id)
    ASSIGN.check(uow, Place.of(request))
    becomes = _step(request, "assign")
    if request.status == "assigned" and (
        (request.assignee_kind, request.assignee_id, request.team)
        == (
            ("volunteer", data.volunteer_id, None)
            if data.volunteer_id is not None
            else ("team", None, data.team)
        )
    ):
        # Given to them already (a resend whose answer was lost): no change, no second
        # `.assigned` (which notify would send the volunteer again), the same answer.
        return request
    now = datetime.now(UTC)
    if data.volunteer_id is not None:
        person = await uow.get(
            repository.Person,
            data.volunteer_id,
            what="volunteer",
            field="volunteer_id",
            where=repository.Person.kind == "volunteer",
        )
        if not await repository.serves(uow, request, person.id):
            # A volunteer reads only their buildings: given an errand elsewhere, they would
            # never see it (and notify would still tell them it is theirs).
            raise Invalid.on(
                "volunteer_id",
                f"volunteer {person.id} is not assigned to this request's building, a grid "
                "over it or its compound: they would not see the errand",
            )
        request.assignee_kind, request.assignee_id, request.team = "volunteer", person.id, None
    else:
        request.assignee_kind, request.assignee_id, request.team = "team", None, data.team
    request.status, request.assigned_at = becomes, now
    request.revision += 1
    await uow.session.flush()
    uow.emit(
        event(RequestAssigned, request, at=now, assignee_id=request.assignee_id, team=request.team),
        compound_id=request.compound_id,
        urgent=request.priority == "urgent",
    )
    return request


async def move(
    uow: UnitOfWork, *, request_id: uuid.UUID, action: str, reason: str | None = None
) -> HelpRequest:
    """start, done, confirm or cancel: the state must allow it (409 naming the current one),
    and a medicine run's card must be back to finish or cancel it (409 naming where it is)."""
    request = await repository.locked(uow, request_id)
    checks = {"start": WORK, "done": WORK, "confirm": CONFIRM, "cancel": CANCEL}
    checks[action].check(uow, Place.of(request))
    becomes = _step(request, action)
    if action in ("done", "confirm", "cancel"):
        _refuse_if_card_out(request)
    request.status = becomes
    now = datetime.now(UTC)
    request.revision += 1
    kind: type[RequestEvent]
    extra: dict[str, Any] = {}
    if action == "start":
        request.started_at, kind = now, RequestStarted
    elif action == "done":
        request.done_at, kind = now, RequestDone
    elif action == "confirm":
        request.closed_at, request.closed_by, kind = now, uow.principal.username, RequestClosed
    else:
        request.cancelled_at, request.cancel_reason, kind = now, reason, RequestCancelled
        extra["cancel_reason"] = reason
    await uow.session.flush()
    uow.emit(event(kind, request, at=now, **extra), compound_id=request.compound_id)
    return request


async def get(uow: UnitOfWork, request_id: uuid.UUID) -> HelpRequest:
    return await uow.get(
        HelpRequest, request_id, what="help request", where=repository.visible_to(uow)
    )


async def counts(uow: UnitOfWork, *, now: datetime) -> list[schemas.RequestCounts]:
    rows = await repository.counts_by_compound(uow, now=now)
    return [schemas.RequestCounts.model_validate(row) for row in rows]


async def suggest(
    uow: UnitOfWork, *, request_id: uuid.UUID, at: datetime | None = None
) -> list[schemas.Suggestion]:
    """Volunteers for the errand: assigned to its building, a grid over it or its compound,
    with a skill the kind needs, available at ``at`` (now), fewest open errands first."""
    request = await get(uow, request_id)
    ASSIGN.check_role(uow)
    # Volunteers' availability ("nights only") is in the town office's clock.
    zone, when = uow.settings.zone, at or datetime.now(UTC)
    needed = rules.SKILLS.get(request.kind, frozenset())
    fitting = [
        (person, how)
        for person, how in await repository.candidates(uow, request)
        if (not needed or needed & set(person.skills or ()))
        and rules.available(person.availability or "", at=when, zone=zone)
    ]
    load = await repository.open_errands(uow, [p.id for p, _ in fitting])
    order = {"building": 0, "grid": 1, "compound": 2}
    fitting.sort(key=lambda f: (load.get(f[0].id, 0), order[f[1]], f[0].name))
    return [
        schemas.Suggestion(
            id=person.id,
            name=person.name,
            phone=person.phone,
            skills=list(person.skills or ()),
            availability=person.availability or "",
            assigned_via=how,
            open_errands=load.get(person.id, 0),
        )
        for person, how in fitting
    ]


# ---- answers ----


def _address(who: repository.Who | None, *, full: bool) -> str:
    if who is None:
        return ""
    parts = [f"building {who.building}"]
    if full and who.unit:
        parts.append(f"unit {who.unit}")
    if full and (who.room or who.household):
        parts.append(f"room {who.room or who.household}")
    return ", ".join(parts)


def _card(request: Any, now: datetime) -> schemas.CardOut | None:
    if request.card_label is None or request.card_status is None:
        return None
    return schemas.CardOut(
        label=request.card_label,
        status=request.card_status,
        collected_at=request.card_collected_at,
        at_hospital_at=request.card_at_hospital_at,
        returned_at=request.card_returned_at,
        due_at=request.card_due_at,
        overdue=request.card_status != "returned"
        and request.card_due_at is not None
        and request.card_due_at < now,
    )


async def present_all(uow: UnitOfWork, found: Sequence[HelpRequest]) -> list[schemas.RequestOut]:
    """Requests in clear (the endpoint's presenter masks the phone)."""
    people = await repository.who(uow, [r.resident_id for r in found])
    volunteer = uow.principal.role is Role.volunteer
    now = datetime.now(UTC)
    return [answer(r, people.get(r.resident_id), now=now, volunteer=volunteer) for r in found]


def answer(
    r: Any, person: repository.Who | None, *, now: datetime, volunteer: bool
) -> schemas.RequestOut:
    """One request as the API shows it. A volunteer sees the unit, room and phone only while
    the errand is theirs to run."""
    full = not volunteer or r.status in repository.ACTIVE
    return schemas.RequestOut(
        id=r.id,
        kind=r.kind,
        reason=r.reason,
        priority=r.priority,
        status=r.status,
        resident_id=r.resident_id,
        name=person.name if person else None,
        phone=person.phone if person and full else None,
        address=_address(person, full=full),
        town_id=r.town_id,
        compound_id=r.compound_id,
        building_id=r.building_id,
        details=r.details,
        attachments=list(r.attachments or ()),
        hospital=r.hospital,
        created_by=r.created_by,
        created_at=r.created_at,
        due_at=r.due_at,
        seconds_left=int((r.due_at - now).total_seconds()),
        overdue=r.status in repository.OPEN and r.due_at < now,
        escalation_level=r.escalation_level,
        assignee_id=r.assignee_id,
        team=r.team,
        assigned_at=r.assigned_at,
        started_at=r.started_at,
        done_at=r.done_at,
        closed_at=r.closed_at,
        closed_by=r.closed_by,
        cancelled_at=r.cancelled_at,
        cancel_reason=r.cancel_reason,
        recurrence_id=r.recurrence_id,
        trip_id=r.trip_id,
        card=_card(r, now),
        revision=r.revision,
    )


# ---- overdue ----


async def escalate_overdue(uow: UnitOfWork, now: datetime) -> None:
    """Raise the next escalation of every open request past its next escalation time. The
    escalation row's key (request, level) lets one replica win; only the winner bumps the
    request and emits, in the same transaction."""
    due = await uow.session.scalars(
        select(HelpRequest)
        .where(
            HelpRequest.status.in_(repository.OPEN),
            HelpRequest.next_escalation_at <= now,
            HelpRequest.escalation_level < max(LEVELS),
        )
        .order_by(HelpRequest.next_escalation_at)
        .limit(500)
    )
    escalations = table_of(RequestEscalation)
    for request in list(due):
        level = request.escalation_level + 1
        claim = insert_ignoring_duplicates(escalations, uow.dialect).values(
            id=new_id(),
            request_id=request.id,
            level=level,
            escalated_to=LEVELS[level],
            at=now,
            **Place.of(request).columns(),
        )
        if (await uow.session.execute(claim)).rowcount != 1:  # type: ignore[attr-defined]
            continue
        await _escalated(uow, request, level=level, now=now)


async def _escalated(uow: UnitOfWork, request: HelpRequest, *, level: int, now: datetime) -> None:
    settings = await repository.settings_for(uow, request.town_id)
    interval = timedelta(minutes=settings.escalate_after_minutes)
    bumped = await uow.session.execute(
        update(HelpRequest)
        .where(HelpRequest.id == request.id)
        .values(
            escalation_level=level,
            next_escalation_at=request.due_at + interval * level,
            revision=HelpRequest.revision + 1,
        )
        .returning(HelpRequest.revision)
        .execution_options(synchronize_session=False)
    )
    request.revision, request.escalation_level = bumped.scalar_one(), level
    grids = await repository.grids_of(uow, request.building_id) if level == 2 else []
    uow.emit(
        event(
            RequestOverdue,
            request,
            at=now,
            level=level,
            escalated_to=LEVELS[level],
            grid_ids=grids,
            assignee_id=request.assignee_id,
        ),
        compound_id=request.compound_id,
        urgent=request.priority == "urgent",
    )


# ---- the town's settings ----

SETTINGS = policy("request settings", "set", Role.town_operator, Role.service)


async def read_settings(uow: UnitOfWork, *, town_id: uuid.UUID) -> RequestSettings:
    if not uow.scope.allows(town_id=town_id):
        raise NotFound(f"no town {town_id} in your scope")
    return await repository.settings_for(uow, town_id)


async def set_settings(
    uow: UnitOfWork, *, town_id: uuid.UUID, data: schemas.SettingsIn
) -> RequestSettings:
    """Targets apply to requests entered from now on; those entered keep their due time."""
    settings = await read_settings(uow, town_id=town_id)
    SETTINGS.check(uow, Place(town_id))
    for field, value in data.model_dump().items():
        setattr(settings, field, value)
    uow.session.add(settings)
    await uow.session.flush()
    return settings
