import uuid
from typing import Annotated, Any, TypeVar

from fastapi import Query, Response

from services.registry.models import (
    SERVICE,
    Assignment,
    PersonKind,
    Staff,
    Team,
    TeamKind,
    Volunteer,
    VolunteerKind,
)
from services.registry.people import repository, schemas, service
from shared.fields import FreeText
from shared.http import Uow, service_router
from shared.pagination import Cursor, Limit, Page
from shared.privacy import Present

router = service_router(SERVICE, tags=["people"])
Out = TypeVar("Out", schemas.StaffOut, schemas.VolunteerOut)

NamePart = Annotated[FreeText | None, Query(max_length=60, description="Part of the name")]


@router.post(
    "/staff",
    status_code=201,
    response_model=schemas.StaffOut,
    summary="Register a staff member of a compound, a committee or the town",
)
async def create_staff(body: schemas.StaffCreate, uow: Uow, present: Present) -> schemas.StaffOut:
    staff = await service.create_staff(uow, data=body)
    return await _one(present, staff, schemas.StaffOut)


@router.get("/staff", response_model=Page[schemas.StaffOut], summary="Staff in your scope")
async def list_staff(
    uow: Uow,
    present: Present,
    committee_id: uuid.UUID | None = None,
    compound_id: uuid.UUID | None = None,
    name: NamePart = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[schemas.StaffOut]:
    page = await repository.staff_page(
        uow,
        committee_id=committee_id,
        compound_id=compound_id,
        name=name,
        cursor=cursor,
        limit=limit,
    )
    return await _people_page(present, page, schemas.StaffOut)


@router.get("/staff/{staff_id}", response_model=schemas.StaffOut)
async def get_staff(staff_id: uuid.UUID, uow: Uow, present: Present) -> schemas.StaffOut:
    staff = await service.find(uow, Staff, staff_id, what="staff member")
    return await _one(present, staff, schemas.StaffOut)


@router.patch("/staff/{staff_id}", response_model=schemas.StaffOut)
async def update_staff(
    staff_id: uuid.UUID,
    body: schemas.StaffUpdate,
    uow: Uow,
    present: Present,
) -> schemas.StaffOut:
    staff = await service.update_staff(uow, staff_id=staff_id, data=body)
    return await _one(present, staff, schemas.StaffOut)


async def _people_page(
    present: Present, page: tuple[list[Any], str | None], out: type[Out]
) -> Page[Out]:
    rows, following = page
    return await present(Page(items=[out.model_validate(p) for p in rows], next_cursor=following))


async def _one(present: Present, person: Staff | Volunteer, out: type[Out]) -> Out:
    return await present(out.model_validate(person))


@router.post(
    "/volunteers",
    status_code=201,
    response_model=schemas.VolunteerOut,
    summary="Register a volunteer of a compound, a committee or the town",
)
async def create_volunteer(
    body: schemas.VolunteerCreate, uow: Uow, present: Present
) -> schemas.VolunteerOut:
    volunteer = await service.create_volunteer(uow, data=body)
    return await _one(present, volunteer, schemas.VolunteerOut)


@router.get(
    "/volunteers",
    response_model=Page[schemas.VolunteerOut],
    summary="Volunteers in your scope, by place, kind and skill",
)
async def list_volunteers(
    uow: Uow,
    present: Present,
    committee_id: uuid.UUID | None = None,
    compound_id: uuid.UUID | None = None,
    kind: VolunteerKind | None = None,
    skill: Annotated[
        FreeText | None, Query(min_length=1, max_length=40, examples=["driving"])
    ] = None,
    name: NamePart = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[schemas.VolunteerOut]:
    page = await repository.volunteers_page(
        uow,
        committee_id=committee_id,
        compound_id=compound_id,
        kind=kind,
        skill=skill,
        name=name,
        cursor=cursor,
        limit=limit,
    )
    return await _people_page(present, page, schemas.VolunteerOut)


@router.get("/volunteers/{volunteer_id}", response_model=schemas.VolunteerOut)
async def get_volunteer(
    volunteer_id: uuid.UUID, uow: Uow, present: Present
) -> schemas.VolunteerOut:
    volunteer = await service.find(uow, Volunteer, volunteer_id, what="volunteer")
    return await _one(present, volunteer, schemas.VolunteerOut)


@router.patch(
    "/volunteers/{volunteer_id}",
    response_model=schemas.VolunteerOut,
    summary="Change a volunteer; volunteers may change their own availability",
)
async def update_volunteer(
    volunteer_id: uuid.UUID,
    body: schemas.VolunteerUpdate,
    uow: Uow,
    present: Present,
) -> schemas.VolunteerOut:
    volunteer = await service.update_volunteer(uow, volunteer_id=volunteer_id, data=body)
    return await _one(present, volunteer, schemas.VolunteerOut)


@router.post(
    "/teams",
    status_code=201,
    response_model=schemas.TeamOut,
    summary="Form a team of a compound or a committee",
)
async def create_team(body: schemas.TeamCreate, uow: Uow) -> Team:
    return await service.create_team(uow, data=body)


@router.get("/teams", response_model=Page[schemas.TeamOut], summary="Teams in your scope")
async def list_teams(
    uow: Uow,
    committee_id: uuid.UUID | None = None,
    compound_id: uuid.UUID | None = None,
    kind: TeamKind | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[schemas.TeamOut]:
    page, following = await repository.teams_page(
        uow,
        committee_id=committee_id,
        compound_id=compound_id,
        kind=kind,
        cursor=cursor,
        limit=limit,
    )
    return Page(items=[schemas.TeamOut.model_validate(t) for t in page], next_cursor=following)


@router.get("/teams/{team_id}", response_model=schemas.TeamOut)
async def get_team(team_id: uuid.UUID, uow: Uow) -> Team:
    return await service.find(uow, Team, team_id, what="team")


@router.patch("/teams/{team_id}", response_model=schemas.TeamOut, summary="Rename a team")
async def rename_team(team_id: uuid.UUID, body: schemas.TeamUpdate, uow: Uow) -> Team:
    return await service.rename_team(uow, team_id=team_id, data=body)


@router.get(
    "/teams/{team_id}/members",
    response_model=list[schemas.MemberOut],
    summary="A team's members",
    description="Of a team placed above your scope (a committee's, read by a building's "
    "leader or volunteer), only the members you see.",
)
async def list_members(team_id: uuid.UUID, uow: Uow) -> list[schemas.MemberOut]:
    return await service.members(uow, team_id=team_id)


@router.post(
    "/teams/{team_id}/members",
    status_code=201,
    response_model=schemas.MemberOut,
    summary="Add a staff member or volunteer to a team",
)
async def add_member(team_id: uuid.UUID, body: schemas.PersonRef, uow: Uow) -> schemas.MemberOut:
    return await service.add_member(uow, team_id=team_id, data=body)


@router.delete(
    "/teams/{team_id}/members/{person_id}",
    status_code=204,
    summary="Take a staff member or volunteer off a team",
)
async def remove_member(team_id: uuid.UUID, person_id: uuid.UUID, uow: Uow) -> Response:
    await service.remove_member(uow, team_id=team_id, person_id=person_id)
    return Response(status_code=204)


@router.post(
    "/assignments",
    status_code=201,
    response_model=schemas.AssignmentOut,
    summary="Put a staff member or volunteer in charge of a compound, grid or building",
    description="A signed-in leader or volunteer sees what their assignments cover, "
    "from their next sign-in.",
)
async def create_assignment(body: schemas.AssignmentCreate, uow: Uow) -> Assignment:
    return await service.create_assignment(uow, data=body)


@router.get("/assignments", response_model=Page[schemas.AssignmentOut])
async def list_assignments(
    uow: Uow,
    person_id: uuid.UUID | None = None,
    person_kind: PersonKind | None = None,
    compound_id: uuid.UUID | None = None,
    grid_id: uuid.UUID | None = None,
    building_id: uuid.UUID | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[schemas.AssignmentOut]:
    page, following = await repository.assignments_page(
        uow,
        person_id=person_id,
        person_kind=person_kind,
        compound_id=compound_id,
        grid_id=grid_id,
        building_id=building_id,
        cursor=cursor,
        limit=limit,
    )
    return Page(
        items=[schemas.AssignmentOut.model_validate(a) for a in page], next_cursor=following
    )


@router.get("/assignments/{assignment_id}", response_model=schemas.AssignmentOut)
async def get_assignment(assignment_id: uuid.UUID, uow: Uow) -> Assignment:
    return await service.find(uow, Assignment, assignment_id, what="assignment")


@router.delete(
    "/assignments/{assignment_id}",
    status_code=204,
    summary="End an assignment (counts from the person's next sign-in)",
)
async def end_assignment(assignment_id: uuid.UUID, uow: Uow) -> Response:
    await service.end_assignment(uow, assignment_id=assignment_id)
    return Response(status_code=204)
