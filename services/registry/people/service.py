"""Staff, volunteers, their teams and their assignments to compounds, grids and buildings.

Assignments are what sign-in reads to give grid and building leaders and volunteers their
scope (services/registry/auth/service.py), so a new or ended assignment counts from the
person's next sign-in.
"""

import json
import typing
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Text, cast, select

from services.registry.auth.sessions import end_access_of_people
from services.registry.models import (
    Assignment,
    Building,
    Committee,
    Compound,
    Grid,
    PersonKind,
    Staff,
    Team,
    TeamMember,
    Town,
    User,
    Volunteer,
)
from services.registry.people import schemas
from shared.authz import FIELD, MANAGERS, Place, Relation, policy
from shared.contracts.registry import (
    AssignmentRecord,
    AssignmentsChanged,
    PeopleChanged,
    PersonRecord,
)
from shared.db import AnySelect
from shared.directory.seen import scope_ids_seen
from shared.problems import Conflict, Invalid, NotFound
from shared.uow import UnitOfWork

Person = Staff | Volunteer
PERSON_MODELS: dict[PersonKind, type[Person]] = {
    PersonKind.staff: Staff,
    PersonKind.volunteer: Volunteer,
}
KIND_OF: dict[type[Person], PersonKind] = {m: k for k, m in PERSON_MODELS.items()}
T = TypeVar("T", bound=Staff | Volunteer | Team | Assignment)


def person_record(person: Person) -> PersonRecord:
    return PersonRecord(
        kind=KIND_OF[type(person)].value,
        id=person.id,
        town_id=person.town_id,
        committee_id=person.committee_id,
        compound_id=person.compound_id,
        name=person.name,
        phone=person.phone,
        title=getattr(person, "title", ""),
        skills=list(getattr(person, "skills", [])),
        availability=getattr(person, "availability", ""),
    )


def assignment_record(
    assignment: Assignment, *, ended_at: datetime | None = None
) -> AssignmentRecord:
    return AssignmentRecord(
        id=assignment.id,
        person_kind=PersonKind(assignment.person_kind).value,
        person_id=assignment.person_id,
        town_id=assignment.town_id,
        compound_id=assignment.compound_id,
        building_id=assignment.building_id,
        grid_id=assignment.grid_id,
        duty=assignment.duty,
        assigned_at=assignment.assigned_at,
        ended_at=ended_at,
    )


def _people_changed(uow: UnitOfWork, people: Sequence[Person]) -> None:
    uow.emit(PeopleChanged(people=[person_record(p) for p in people]))


# Staff, volunteers, teams and assignments are managed where they are placed (a compound,
# a committee or the town) by those who manage that place.
MANAGE_PEOPLE = policy("people", "manage", *MANAGERS)
ASSIGN = policy("assignments", "manage", *MANAGERS)
# A volunteer signed in as themself says when they are available.
OWN_AVAILABILITY = policy("volunteers", "update own availability", *FIELD, relation=Relation.sees)


async def find(
    uow: UnitOfWork, model: type[T], entity_id: uuid.UUID, *, what: str, field: str | None = None
) -> T:
    """A staff member, volunteer, team or assignment the caller may see, or a 404."""
    return await uow.get(model, entity_id, what=what, field=field)


async def find_person(uow: UnitOfWork, *, kind: PersonKind, person_id: uuid.UUID) -> Person:
    found = await find_people(uow, [schemas.PersonRef(person_kind=kind, person_id=person_id)])
    return found[person_id]


async def find_people(
    uow: UnitOfWork, refs: Sequence[schemas.PersonRef]
) -> dict[uuid.UUID, Person]:
    """The staff members and volunteers named, one query per kind; a 404 naming
    ``person_id`` when one is unknown or outside the caller's scope."""
    found: dict[uuid.UUID, Person] = {}
    for kind, model in PERSON_MODELS.items():
        ids = {r.person_id for r in refs if r.person_kind is kind}
        if ids:
            query = select(model).where(model.id.in_(ids))
            rows = typing.cast(Sequence[Person], (await uow.session.scalars(query)).all())
            found.update((p.id, p) for p in rows)
    for ref in refs:
        if ref.person_id not in found:
            message = f"no {ref.person_kind.value} {ref.person_id} in your scope"
            raise NotFound.on("person_id", message)
    return found


async def _placement(
    uow: UnitOfWork,
    *,
    town_id: uuid.UUID | None,
    committee_id: uuid.UUID | None,
    compound_id: uuid.UUID | None,
) -> Place:
    """Where a new row goes, from the most specific place given, if the caller manages it."""
    if compound_id is not None:
        compound = await uow.get(Compound, compound_id, what="compound", field="compound_id")
        if committee_id not in (None, compound.committee_id):
            raise Invalid.on("committee_id", f"compound {compound.code} is not of this committee")
        place, field = Place(compound.town_id, compound.committee_id, compound.id), "compound_id"
    elif committee_id is not None:
        committee = await uow.get(Committee, committee_id, what="committee", field="committee_id")
        place, field = Place(committee.town_id, committee.id), "committee_id"
    elif town_id is not None:
        await uow.get(Town, town_id, what="town", field="town_id")
        place, field = Place(town_id), "town_id"
    else:
        raise Invalid.on("compound_id", "say where: give compound_id, committee_id or town_id")
    MANAGE_PEOPLE.check(uow, place, field=field)
    if town_id not in (None, place.town_id):
        raise Invalid.on("town_id", "the compound or committee is in another town")
    return place


def require_manages(uow: UnitOfWork, row: Person | Team) -> None:
    """The caller manages the compound, committee or town the row belongs to."""
    MANAGE_PEOPLE.check(uow, Place.of(row))


def _apply(row: object, changes: dict[str, Any], *, required: Sequence[str]) -> None:
    for key in required:
        if key in changes and changes[key] is None:
            raise Invalid.on(key, f"{key} cannot be emptied")
    for key, value in changes.items():
        setattr(row, key, value)


async def create_staff(uow: UnitOfWork, *, data: schemas.StaffCreate) -> Staff:
    place = await _placement(
        uow, town_id=data.town_id, committee_id=data.committee_id, compound_id=data.compound_id
    )
    staff = Staff(
        **place.columns(),
        name=data.name,
        phone=data.phone,
        title=data.title,
    )
    uow.session.add(staff)
    await uow.session.flush()
    _people_changed(uow, [staff])
    return staff


async def update_staff(uow: UnitOfWork, *, staff_id: uuid.UUID, data: schemas.StaffUpdate) -> Staff:
    staff = await find(uow, Staff, staff_id, what="staff member")
    require_manages(uow, staff)
    _apply(staff, data.model_dump(exclude_unset=True), required=("name", "title"))
    await uow.session.flush()
    _people_changed(uow, [staff])
    return staff


async def create_volunteer(uow: UnitOfWork, *, data: schemas.VolunteerCreate) -> Volunteer:
    [volunteer] = await create_volunteers(uow, rows=[data])
    return volunteer


async def create_volunteers(
    uow: UnitOfWork, *, rows: Sequence[schemas.VolunteerCreate]
) -> list[Volunteer]:
    """Register volunteers, checking each distinct place once, so the hundreds of a
    compound go in together."""
    places: dict[tuple[uuid.UUID | None, ...], Place] = {}
    volunteers = []
    for data in rows:
        key = (data.town_id, data.committee_id, data.compound_id)
        if key not in places:
            places[key] = await _placement(
                uow, town_id=key[0], committee_id=key[1], compound_id=key[2]
            )
        place = places[key]
        volunteers.append(
            Volunteer(
                **place.columns(),
                name=data.name,
                phone=data.phone,
                kind=data.kind.value,
                skills=data.skills,
                availability=data.availability,
            )
        )
    uow.session.add_all(volunteers)
    await uow.session.flush()
    _people_changed(uow, volunteers)
    return volunteers


async def update_volunteer(
    uow: UnitOfWork, *, volunteer_id: uuid.UUID, data: schemas.VolunteerUpdate
) -> Volunteer:
    """Managers change anything; a volunteer signed in as themself may say when they are
    available."""
    volunteer = await find(uow, Volunteer, volunteer_id, what="volunteer")
    changes = data.model_dump(exclude_unset=True)
    own = set(changes) <= {"availability"} and await _is_signed_in_as(
        uow, PersonKind.volunteer, volunteer.id
    )
    if own:
        OWN_AVAILABILITY.check(uow, Place.of(volunteer))
    else:
        require_manages(uow, volunteer)
    _apply(volunteer, changes, required=("name", "kind", "skills", "availability"))
    await uow.session.flush()
    _people_changed(uow, [volunteer])
    return volunteer


async def _is_signed_in_as(uow: UnitOfWork, kind: PersonKind, person_id: uuid.UUID) -> bool:
    try:
        user_id = uuid.UUID(uow.principal.id)
    except ValueError:
        return False
    query = select(User.id).where(
        User.id == user_id, User.person_kind == kind.value, User.person_id == person_id
    )
    return await uow.session.scalar(query) is not None


def with_skill(query: AnySelect, skill: str) -> AnySelect:
    """Volunteers whose skills list holds ``skill``. The list is JSON text on both backends,
    so a quoted element is found by LIKE without dialect-specific JSON operators."""
    normalised = " ".join(skill.split()).lower()
    return query.where(
        cast(Volunteer.skills, Text).contains(json.dumps(normalised), autoescape=True)
    )


async def create_team(uow: UnitOfWork, *, data: schemas.TeamCreate) -> Team:
    if data.compound_id is None and data.committee_id is None:
        raise Invalid.on("compound_id", "a team belongs to a compound or a committee")
    place = await _placement(
        uow, town_id=None, committee_id=data.committee_id, compound_id=data.compound_id
    )
    team = Team(
        **place.columns(),
        kind=data.kind.value,
        name=data.name,
    )
    uow.session.add(team)
    await uow.session.flush()
    return team


async def rename_team(uow: UnitOfWork, *, team_id: uuid.UUID, data: schemas.TeamUpdate) -> Team:
    team = await find(uow, Team, team_id, what="team")
    require_manages(uow, team)
    team.name = data.name
    await uow.session.flush()
    return team


async def add_member(
    uow: UnitOfWork, *, team_id: uuid.UUID, data: schemas.PersonRef
) -> schemas.MemberOut:
    [member] = await add_members(uow, team_id=team_id, refs=[data])
    return member


async def add_members(
    uow: UnitOfWork, *, team_id: uuid.UUID, refs: Sequence[schemas.PersonRef]
) -> list[schemas.MemberOut]:
    """Put people on a team, each once."""
    team = await find(uow, Team, team_id, what="team")
    require_manages(uow, team)
    people = await find_people(uow, refs)
    for person in people.values():
        if person.town_id != team.town_id:
            raise Invalid.on("person_id", f"{person.name} is of another town")
    ids = [r.person_id for r in refs]
    taken = select(TeamMember.person_id).where(
        TeamMember.team_id == team.id, TeamMember.person_id.in_(ids)
    )
    seen = set((await uow.session.scalars(taken)).all())
    for person_id in ids:
        if person_id in seen:
            name = people[person_id].name
            raise Conflict.on("person_id", f"{name} is in team {team.name} already")
        seen.add(person_id)
    members = [
        TeamMember(
            **Place.of(team).columns(),
            team_id=team.id,
            person_kind=r.person_kind.value,
            person_id=r.person_id,
        )
        for r in refs
    ]
    uow.session.add_all(members)
    await uow.session.flush()
    return [_member_out(m, people[m.person_id].name) for m in members]


async def remove_member(uow: UnitOfWork, *, team_id: uuid.UUID, person_id: uuid.UUID) -> None:
    team = await find(uow, Team, team_id, what="team")
    require_manages(uow, team)
    query = select(TeamMember).where(
        TeamMember.team_id == team.id, TeamMember.person_id == person_id
    )
    member = await uow.session.scalar(query)
    if member is None:
        raise NotFound(f"{person_id} is not a member of team {team.name}")
    await uow.session.delete(member)
    await uow.session.flush()


async def members(uow: UnitOfWork, *, team_id: uuid.UUID) -> list[schemas.MemberOut]:
    """A team's members with the names of those the caller may see. A team placed above
    their scope (a committee's, read by a building's leader) lists only the members they
    see: the others are of compounds not theirs."""
    team = await find(uow, Team, team_id, what="team")
    query = select(TeamMember).where(TeamMember.team_id == team.id).order_by(TeamMember.id)
    rows = list((await uow.session.scalars(query)).all())
    shown: set[uuid.UUID] = set()
    names: dict[uuid.UUID, str] = {}
    for kind, model in PERSON_MODELS.items():
        ids = [m.person_id for m in rows if m.person_kind == kind.value]
        shown.update(await scope_ids_seen(uow, placed=team, rows=model, ids=ids))
        if ids:
            found = select(model.id, model.name).where(model.id.in_(ids))
            names.update({i: n for i, n in (await uow.session.execute(found)).all()})
    return [_member_out(m, names.get(m.person_id)) for m in rows if m.person_id in shown]


def _member_out(member: TeamMember, name: str | None) -> schemas.MemberOut:
    return schemas.MemberOut(
        id=member.id,
        team_id=member.team_id,
        person_kind=PersonKind(member.person_kind),
        person_id=member.person_id,
        name=name,
    )


@dataclass(frozen=True)
class _Post:
    """Where an assignment puts a person: its place (the assignment's scope columns), and
    the grid when it is one."""

    place: Place
    grid_id: uuid.UUID | None = None


async def _post_of(uow: UnitOfWork, data: schemas.AssignmentCreate) -> _Post:
    given = {
        name: value
        for name, value in (
            ("compound_id", data.compound_id),
            ("grid_id", data.grid_id),
            ("building_id", data.building_id),
        )
        if value is not None
    }
    if len(given) != 1:
        message = "give exactly one of compound_id, grid_id and building_id"
        fields = list(given) or ["compound_id", "grid_id", "building_id"]
        raise Invalid(message, errors=[{"field": f, "message": message} for f in fields])
    post: _Post
    if data.building_id is not None:
        building = await uow.get(Building, data.building_id, what="building", field="building_id")
        post = _Post(Place.of(building))
    elif data.grid_id is not None:
        grid = await uow.get(Grid, data.grid_id, what="grid", field="grid_id")
        post = _Post(Place.of(grid), grid_id=grid.id)
    else:
        assert data.compound_id is not None
        compound = await uow.get(Compound, data.compound_id, what="compound", field="compound_id")
        post = _Post(Place.of(compound))
    ASSIGN.check(uow, post.place, field=next(iter(given)))
    return post


async def create_assignment(uow: UnitOfWork, *, data: schemas.AssignmentCreate) -> Assignment:
    [assignment] = await create_assignments(uow, rows=[data])
    return assignment


async def create_assignments(
    uow: UnitOfWork, *, rows: Sequence[schemas.AssignmentCreate]
) -> list[Assignment]:
    """Put people in charge of places, each distinct place checked once; a person is
    assigned to the same place once."""
    posts: dict[tuple[uuid.UUID | None, ...], _Post] = {}
    for data in rows:
        key = (data.compound_id, data.grid_id, data.building_id)
        if key not in posts:
            posts[key] = await _post_of(uow, data)
    people = await find_people(uow, rows)
    taken = select(
        Assignment.person_id, Assignment.compound_id, Assignment.building_id, Assignment.grid_id
    ).where(Assignment.person_id.in_(people))
    seen = {tuple(row) for row in (await uow.session.execute(taken)).all()}
    now = datetime.now(UTC)
    assignments = []
    for data in rows:
        post = posts[(data.compound_id, data.grid_id, data.building_id)]
        person = people[data.person_id]
        if person.town_id != post.place.town_id:
            raise Invalid.on("person_id", f"{person.name} is of another town")
        held = (person.id, post.place.compound_id, post.place.building_id, post.grid_id)
        if held in seen:
            raise Conflict.on("person_id", f"{person.name} is assigned there already")
        seen.add(held)
        assignments.append(
            Assignment(
                **post.place.columns(),
                grid_id=post.grid_id,
                person_kind=data.person_kind.value,
                person_id=person.id,
                duty=data.duty,
                assigned_at=now,
            )
        )
    uow.session.add_all(assignments)
    await uow.session.flush()
    uow.emit(AssignmentsChanged(assignments=[assignment_record(a) for a in assignments]))
    # Their tokens carry the scope they had: end them; a refresh brings the new one.
    await end_access_of_people(uow, person_ids=set(people))
    return assignments


async def end_assignment(uow: UnitOfWork, *, assignment_id: uuid.UUID) -> None:
    assignment = await find(uow, Assignment, assignment_id, what="assignment")
    ASSIGN.check(uow, Place.of(assignment))
    ended = assignment_record(assignment, ended_at=datetime.now(UTC))
    await uow.session.delete(assignment)
    await uow.session.flush()
    uow.emit(AssignmentsChanged(assignments=[ended]))
    await end_access_of_people(uow, person_ids={assignment.person_id})
