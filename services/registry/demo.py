"""The demo town (``cordon demo``, ``cordon run``) and the first town of a real deployment.

The demo follows the field reports in the handbook: five committees, about twenty compounds
of every kind, households of one to seven people with the age and care profile of old
compounds, valid ID numbers. Everything is made through the service layer, residents
through the ledger import, so the demo exercises the paths operators use.
"""

import io
import math
import random
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TextIO

from sqlalchemy import select

from services.registry.auth import schemas as auth_schemas
from services.registry.auth.service import create_user
from services.registry.documents import Sex, make_id_card
from services.registry.ledger.service import import_ledger
from services.registry.models import (
    Building,
    Compound,
    CompoundKind,
    Grid,
    GridBuilding,
    PersonKind,
    Staff,
    Team,
    TeamKind,
    Town,
    Volunteer,
    VolunteerKind,
    ZoneLevel,
)
from services.registry.people import schemas as people
from services.registry.people import service as people_service
from services.registry.places import schemas as places
from services.registry.places import service as place_service
from services.registry.places.service import create_town
from services.registry.zones.service import set_zone
from shared.auth import Principal, Role
from shared.service import ServiceRuntime
from shared.uow import UnitOfWork

DEMO_TOWN = "DEMO"
DEMO_PASSWORD = "cordon-demo-2022"
RESIDENTS_PER_UNIT = 40
COMMITTEES = ("Riverside", "Old Mill", "East Gate", "Orchard", "Lakeview")
# Four compounds per committee, in the mix of the field reports.
COMPOUND_KINDS = (
    CompoundKind.public_housing,
    CompoundKind.self_built,
    CompoundKind.commercial,
    CompoundKind.mixed,
    CompoundKind.public_housing,
    CompoundKind.commercial,
    CompoundKind.villas,
    CompoundKind.self_built,
    CompoundKind.public_housing,
    CompoundKind.mixed,
)
OLD_KINDS = frozenset({CompoundKind.public_housing, CompoundKind.self_built})
UNITS_PER_BUILDING = {
    CompoundKind.public_housing: 3,
    CompoundKind.commercial: 4,
    CompoundKind.mixed: 2,
    CompoundKind.self_built: 1,
    CompoundKind.villas: 1,
}
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
GIVEN = "伟芳娜秀敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂英华玉兰萍红建国志海德福"


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    role: str


# One account per role, so a newcomer can see the system as each of them sees it.
DEMO_LOGINS = (
    DemoLogin("operator", DEMO_PASSWORD, Role.town_operator.value),
    DemoLogin("committee1", DEMO_PASSWORD, Role.committee_staff.value),
    DemoLogin("grid1", DEMO_PASSWORD, Role.grid_leader.value),
    DemoLogin("leader1", DEMO_PASSWORD, Role.building_leader.value),
    DemoLogin("volunteer1", DEMO_PASSWORD, Role.volunteer.value),
)


def describe_logins() -> list[str]:
    """The lines `cordon run` and `cordon demo` print: a login per role."""
    width = max(len(login.role) for login in DEMO_LOGINS) + 1
    return ["Demo logins, one per role:"] + [
        f"  {login.role + ':':<{width}} {login.username} / {login.password}"
        for login in DEMO_LOGINS
    ]


@dataclass(frozen=True)
class LedgerBuilding:
    compound_code: str
    building_code: str
    unit_codes: tuple[str, ...]
    kind: CompoundKind


async def bootstrap_town(
    runtime: ServiceRuntime, *, town_code: str, town_name: str, username: str, password: str
) -> uuid.UUID:
    """Create a town and its first operator, in one transaction."""
    async with runtime.uow(Principal.system("bootstrap")) as uow:
        town = await create_town(uow, code=town_code, name=town_name)
        await create_user(
            uow,
            data=auth_schemas.UserCreate(
                username=username, password=password, role=Role.town_operator, town_id=town.id
            ),
        )
        await uow.commit()
    return town.id


async def ensure_demo_town(
    runtime: ServiceRuntime, *, size: int = 25_000, seed: int = 7
) -> DemoLogin | None:
    """Build the demo town of ``size`` residents unless it exists; return the operator's login."""
    if not 100 <= size <= 1_000_000:
        raise ValueError("the demo town holds 100 to 1,000,000 residents")
    async with runtime.uow(Principal.system("demo")) as uow:
        if await uow.session.scalar(select(Town.id).where(Town.code == DEMO_TOWN)) is not None:
            return None
    town_id = await bootstrap_town(
        runtime,
        town_code=DEMO_TOWN,
        town_name="Riverside Street (demo)",
        username="operator",
        password=DEMO_PASSWORD,
    )
    async with runtime.uow(Principal.system("demo")) as uow:
        layout = await build_places(uow, town_id=town_id, size=size, seed=seed)
        await _lockdown_in_progress(uow, layout=layout)
        await uow.commit()
    await _import_residents(runtime, layout=layout, size=size, seed=seed)
    return DemoLogin("operator", DEMO_PASSWORD, Role.town_operator.value)


async def build_places(
    uow: UnitOfWork, *, town_id: uuid.UUID, size: int, seed: int
) -> list[LedgerBuilding]:
    """Committees, compounds, buildings, units and grids for ``size`` residents; the layout
    that :func:`write_ledger` fills."""
    rng = random.Random(seed)
    compounds = len(COMMITTEES) * 4
    units_in_town = max(compounds, math.ceil(size / RESIDENTS_PER_UNIT))
    layout: list[LedgerBuilding] = []
    for c, committee_name in enumerate(COMMITTEES, start=1):
        committee = await place_service.create_committee(
            uow,
            data=places.CommitteeCreate(
                town_id=town_id, code=f"K{c}", name=f"{committee_name} committee"
            ),
        )
        await create_user(
            uow,
            data=auth_schemas.UserCreate(
                username=f"committee{c}",
                password=DEMO_PASSWORD,
                role=Role.committee_staff,
                town_id=town_id,
                committee_id=committee.id,
            ),
        )
        for k in range(4):
            number = (c - 1) * 4 + k
            kind = COMPOUND_KINDS[number % len(COMPOUND_KINDS)]
            code = f"C{number + 1:02d}"
            gates = [places.GateCreate(name=g) for g in ("North", "South", "East", "West", "Side")]
            compound = await place_service.create_compound(
                uow,
                data=places.CompoundCreate(
                    committee_id=committee.id,
                    code=code,
                    name=f"{committee_name} {kind.value.replace('_', ' ')} {k + 1}",
                    kind=kind,
                    gates=gates[: rng.randint(1, 5)],
                ),
            )
            units = max(1, round(units_in_town / compounds * rng.uniform(0.7, 1.3)))
            layout += await _build_buildings(uow, compound.id, code, kind, units)
    await _build_grids(uow, town_id=town_id)
    await _build_people(uow, town_id=town_id, size=size, rng=rng)
    return layout


async def _lockdown_in_progress(uow: UnitOfWork, *, layout: list[LedgerBuilding]) -> None:
    """A compound split as in the field reports: its first building sealed (the west zone),
    its second controlled. The smallest compound, so a screening round over the biggest one
    (the lockdown night) starts from open buildings; none when all are the same size."""
    units: dict[str, int] = {}
    for building in layout:
        units[building.compound_code] = units.get(building.compound_code, 0) + len(
            building.unit_codes
        )
    if not units or min(units.values()) == max(units.values()):
        return
    smallest = min(units, key=lambda code: units[code])
    buildings = (
        await uow.session.execute(
            select(Building.id)
            .join(Compound, Compound.id == Building.compound_id)
            .where(Compound.code == smallest)
            .order_by(Building.code)
        )
    ).scalars()
    levels = (ZoneLevel.sealed, ZoneLevel.controlled)
    for building_id, level in zip(buildings, levels, strict=False):
        await set_zone(
            uow,
            building_id=building_id,
            unit_id=None,
            level=level,
            reason="demo: a positive in the west zone",
            set_by="demo",
        )


async def _build_buildings(
    uow: UnitOfWork, compound_id: uuid.UUID, code: str, kind: CompoundKind, units: int
) -> list[LedgerBuilding]:
    per_building = UNITS_PER_BUILDING[kind]
    buildings = []
    for b in range(1, math.ceil(units / per_building) + 1):
        unit_codes = tuple(str(u) for u in range(1, per_building + 1))
        await place_service.create_building(
            uow,
            data=places.BuildingCreate(
                compound_id=compound_id, code=str(b), units=list(unit_codes)
            ),
        )
        buildings.append(LedgerBuilding(code, str(b), unit_codes, kind))
    return buildings


async def _build_grids(uow: UnitOfWork, *, town_id: uuid.UUID) -> None:
    """Ten grids over the town's buildings, each split into microgrids of a few buildings."""
    rows = (await uow.session.execute(select(Building.id, Building.compound_id))).all()
    per_grid = math.ceil(len(rows) / 10)
    for g in range(10):
        members = rows[g * per_grid : (g + 1) * per_grid]
        if not members:
            break
        grid = await place_service.create_grid(
            uow,
            data=places.GridCreate(
                town_id=town_id,
                code=f"G{g + 1}",
                name=f"Grid {g + 1}",
                building_ids=[b for b, _ in members],
            ),
        )
        for m, start in enumerate(range(0, len(members), 4), start=1):
            await place_service.create_grid(
                uow,
                data=places.GridCreate(
                    town_id=town_id,
                    parent_id=grid.id,
                    code=f"G{g + 1}.{m}",
                    name=f"Microgrid {g + 1}.{m}",
                    building_ids=[b for b, _ in members[start : start + 4]],
                ),
            )


# Per committee, as in the field reports: 13 staff, two of them committee-wide.
COMMITTEE_TITLES = ("secretary", "director")
COMPOUND_TITLES = ("compound manager", "grid worker", "gate keeper")
STAFF_PER_COMMITTEE = 13
# 202 volunteers in a compound of 3,500 residents; capped so a huge demo stays quick.
VOLUNTEERS_PER_RESIDENT = 202 / 3500
MAX_VOLUNTEERS_PER_COMPOUND = 250
COMPOUND_TEAMS = (
    TeamKind.sampling,
    TeamKind.errands,
    TeamKind.disinfection,
    TeamKind.care,
    TeamKind.logistics,
)
COMMITTEE_TEAMS = (TeamKind.publicity, TeamKind.counselling, TeamKind.medical)
SKILLS = (
    "driving",
    "first aid",
    "nursing",
    "medicine runs",
    "sign language",
    "counselling",
    "heavy lifting",
    "cooking",
    "phone support",
    "dialect interpreting",
)
AVAILABILITY = ("mornings", "evenings", "weekends", "any time", "nights")


async def _build_people(
    uow: UnitOfWork, *, town_id: uuid.UUID, size: int, rng: random.Random
) -> None:
    """Staff, volunteers and teams of every committee and compound; a volunteer leads each
    building and a staff member each grid; ``leader1`` signs in as the first building's."""
    for title in ("duty officer", "medical liaison"):
        await _staff(uow, rng, title, town_id=town_id)
    compounds = list((await uow.session.scalars(select(Compound).order_by(Compound.code))).all())
    volunteers = round(size / len(compounds) * VOLUNTEERS_PER_RESIDENT)
    staff_of: dict[uuid.UUID, list[Staff]] = {c.id: [] for c in compounds}
    for committee_id in dict.fromkeys(c.committee_id for c in compounds):
        mine = [c for c in compounds if c.committee_id == committee_id]
        lead = [await _staff(uow, rng, t, committee_id=committee_id) for t in COMMITTEE_TITLES]
        for kind in COMMITTEE_TEAMS:
            await _join(uow, await _team(uow, kind, committee_id=committee_id), lead[0])
        for n in range(STAFF_PER_COMMITTEE - len(COMMITTEE_TITLES)):
            compound = mine[n % len(mine)]
            title = COMPOUND_TITLES[n // len(mine) % len(COMPOUND_TITLES)]
            staff_of[compound.id].append(await _staff(uow, rng, title, compound_id=compound.id))
    for compound in compounds:
        count = min(volunteers, MAX_VOLUNTEERS_PER_COMPOUND)
        await _compound_volunteers(uow, rng, compound, count, leads=staff_of[compound.id])
    await _grid_leaders(uow, staff_of)


async def _grid_leaders(uow: UnitOfWork, staff_of: dict[uuid.UUID, list[Staff]]) -> None:
    """Each grid is led by a staff member of the compound its first building is in."""
    grids = await uow.session.execute(select(Grid.id, Grid.code).where(Grid.parent_id.is_(None)))
    for grid_id, code in grids.all():
        first = select(GridBuilding.compound_id).where(GridBuilding.grid_id == grid_id).limit(1)
        compound_id = await uow.session.scalar(first)
        if compound_id is None or not staff_of[compound_id]:
            continue
        await people_service.create_assignment(
            uow,
            data=people.AssignmentCreate(
                person_kind=PersonKind.staff,
                person_id=staff_of[compound_id][0].id,
                grid_id=grid_id,
                duty="grid leader",
            ),
        )
        if code == "G1":
            await _demo_account(uow, "grid1", Role.grid_leader, staff_of[compound_id][0])


async def _compound_volunteers(
    uow: UnitOfWork, rng: random.Random, compound: Compound, count: int, *, leads: list[Staff]
) -> None:
    query = select(Building.id).where(Building.compound_id == compound.id).order_by(Building.id)
    buildings = list((await uow.session.scalars(query)).all())
    volunteers = await people_service.create_volunteers(
        uow,
        rows=[
            people.VolunteerCreate(
                compound_id=compound.id,
                name=_name(rng),
                phone=_phone(rng),
                kind=rng.choices(tuple(VolunteerKind), (1, 8, 1))[0],
                skills=rng.sample(SKILLS, rng.randint(0, 3)),
                availability=rng.choice(AVAILABILITY),
            )
            # A leader for each building, and ``volunteer1`` besides in the smallest demo.
            for _ in range(max(count, len(buildings), 2))
        ],
    )
    for n, kind in enumerate(COMPOUND_TEAMS):
        team = await _team(uow, kind, compound_id=compound.id)
        members = [
            _ref(p) for p in leads[n % len(leads) :][:1] + volunteers[n :: len(COMPOUND_TEAMS)]
        ]
        await people_service.add_members(uow, team_id=team.id, refs=members)
    leaders = [
        people.AssignmentCreate(
            **_ref(volunteer).model_dump(), building_id=building_id, duty="building leader"
        )
        for volunteer, building_id in zip(volunteers, buildings, strict=False)
    ]
    if compound.code == "C01":
        # The last volunteer runs errands for the first building: ``volunteer1``.
        errands = _ref(volunteers[-1]).model_dump()
        leaders.append(people.AssignmentCreate(**errands, building_id=buildings[0], duty="errands"))
    await people_service.create_assignments(uow, rows=leaders)
    if compound.code == "C01":
        await _demo_account(uow, "leader1", Role.building_leader, volunteers[0])
        await _demo_account(uow, "volunteer1", Role.volunteer, volunteers[-1])


async def _demo_account(
    uow: UnitOfWork, username: str, role: Role, person: Staff | Volunteer
) -> None:
    """One of :data:`DEMO_LOGINS`, for a staff member or volunteer of the demo town."""
    await create_user(
        uow,
        data=auth_schemas.UserCreate(
            username=username,
            password=DEMO_PASSWORD,
            role=role,
            town_id=person.town_id,
            person_kind=_ref(person).person_kind,
            person_id=person.id,
        ),
    )


async def _staff(uow: UnitOfWork, rng: random.Random, title: str, **place: uuid.UUID) -> Staff:
    return await people_service.create_staff(
        uow,
        data=people.StaffCreate(name=_name(rng), phone=_phone(rng), title=title, **place),
    )


async def _team(uow: UnitOfWork, kind: TeamKind, **place: uuid.UUID) -> Team:
    name = f"{kind.value.capitalize()} team"
    return await people_service.create_team(
        uow, data=people.TeamCreate(kind=kind, name=name, **place)
    )


async def _join(uow: UnitOfWork, team: Team, person: Staff | Volunteer) -> None:
    await people_service.add_member(uow, team_id=team.id, data=_ref(person))


def _ref(person: Staff | Volunteer) -> people.PersonRef:
    kind = people_service.KIND_OF[type(person)]
    return people.PersonRef(person_kind=kind, person_id=person.id)


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.randint(1, 2)))


def _phone(rng: random.Random) -> str:
    return f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"


async def _import_residents(
    runtime: ServiceRuntime, *, layout: list[LedgerBuilding], size: int, seed: int
) -> None:
    with tempfile.SpooledTemporaryFile(max_size=64 << 20) as file:
        text = io.TextIOWrapper(file, encoding="utf-8", newline="", write_through=True)
        write_ledger(text, layout=layout, size=size, seed=seed)
        text.detach()
        file.seek(0)
        async with runtime.uow(Principal.system("demo")) as uow:
            report = await import_ledger(uow, file=file, filename="demo-ledger.csv")  # type: ignore[arg-type]
            if report.status != "applied":
                raise RuntimeError(f"the demo ledger was refused: {report.errors[:5]}")
            await uow.commit()


HEADER = (
    "compound,building,unit,room,household,name,document_type,document_number,phone,"
    "birth_date,sex,tags,care_notes\n"
)


def write_ledger(out: TextIO, *, layout: list[LedgerBuilding], size: int, seed: int) -> int:
    """Write ``size`` synthetic residents over the layout's units as a ledger CSV; stream it."""
    out.write(HEADER)
    units = [(b, u) for b in layout for u in b.unit_codes]
    people = _People(random.Random(seed), date.today())
    written = 0
    for index, (building, unit) in enumerate(units):
        quota = size // len(units) + (1 if index < size % len(units) else 0)
        for line in people.unit(building, unit, quota):
            out.write(line)
            written += 1
    return written


class _People:
    """Households and their members, with the age and care profile of their compound."""

    def __init__(self, rng: random.Random, today: date) -> None:
        self.rng = rng
        self.today = today
        self.serial = 0

    def unit(self, building: LedgerBuilding, unit: str, quota: int) -> Iterator[str]:
        old = building.kind in OLD_KINDS
        floor, door, placed = 1, 1, 0
        while placed < quota:
            size = min(quota - placed, self._household_size())
            elderly_only = self.rng.random() < (0.5 if old else 0.12)
            room = f"{floor}{door:02d}"
            tenant = self.rng.random() < (0.4 if building.kind is CompoundKind.self_built else 0.08)
            ages = self._ages(size, elderly_only=elderly_only)
            household = f"{unit}-{room}"
            for age in ages:
                yield self._line(building, unit, room, household, age, ages, tenant)
            placed += size
            door += 1
            if door > 4:
                floor, door = floor + 1, 1

    def _household_size(self) -> int:
        return self.rng.choices((1, 2, 3, 4, 5, 6, 7), (18, 28, 24, 14, 9, 5, 2))[0]

    def _ages(self, size: int, *, elderly_only: bool) -> list[int]:
        rng = self.rng
        if elderly_only:
            return [rng.randint(60, 95) for _ in range(min(size, 2))] + [
                rng.randint(60, 90) for _ in range(size - min(size, 2))
            ]
        ages = [rng.randint(22, 59) for _ in range(min(size, 2))]
        for position in range(2, size):
            ages.append(rng.randint(60, 92) if position == 2 and size >= 5 else rng.randint(0, 17))
        return ages

    def _line(
        self,
        building: LedgerBuilding,
        unit: str,
        room: str,
        household: str,
        age: int,
        ages: list[int],
        tenant: bool,
    ) -> str:
        rng = self.rng
        sex = Sex.MALE if rng.random() < 0.49 else Sex.FEMALE
        newborn = age == 0 and rng.random() < 0.08
        days = rng.randint(0, 27) if newborn else age * 365 + rng.randint(30, 360)
        birth = self.today - timedelta(days=days)
        self.serial += 1
        document = make_id_card(
            region=f"{330100 + self.serial // 500:06d}",
            birth=birth,
            sequence=self.serial % 500,
            sex=sex,
        )
        tags = self._tags(age, sex, ages, tenant, newborn)
        phone = _phone(rng) if age >= 16 else ""
        if age >= 16 and rng.random() < 0.1:
            phone = ""
        notes = "dialysis Mon/Wed/Fri" if "dialysis" in tags else ""
        name = _name(rng)
        return (
            f"{building.compound_code},{building.building_code},{unit},{room},{household},"
            f"{name},id_card,{document},{phone},{birth.isoformat()},{sex.value},"
            f"{';'.join(tags)},{notes}\n"
        )

    def _tags(self, age: int, sex: Sex, ages: list[int], tenant: bool, newborn: bool) -> list[str]:
        rng = self.rng
        tags = []
        if age >= 60:
            tags.append("elderly")
        if len(ages) == 1:
            tags.append("living_alone")
        elif min(ages) >= 60:
            tags.append("elderly_only_household")
        if rng.random() < (0.06 if age >= 60 else 0.02):
            tags.append("disabled")
        if rng.random() < 0.003:
            tags.append("deaf_mute")
        if sex is Sex.FEMALE and 22 <= age <= 40 and rng.random() < 0.04:
            tags.append("pregnant")
        if age < 3:
            tags.append("infant")
        if newborn:
            tags.append("newborn")
        if age >= 18 and rng.random() < 0.004:
            tags.append("dialysis")
        if rng.random() < (0.35 if age >= 60 else 0.04):
            tags.append("chronic_medication")
        if age >= 75 and rng.random() < 0.08:
            tags.append("bedridden")
        if tenant:
            tags.append("tenant")
        return tags
