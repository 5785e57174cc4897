import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    computed_field,
    field_validator,
    model_validator,
)

from shared.fields import FreeText, Name, Stated

# A resident's tag as the registry writes it (elderly, living_alone, infant, ...).
Tag = Annotated[str, Field(pattern=r"^[a-z][a-z_]{0,29}$", examples=["infant"])]
PlanScopeKind = Literal["town", "compounds", "buildings", "units", "zone_level"]
SheetOrPage = Literal["csv", "xlsx", "html"]


class PlanScope(BaseModel):
    """Which households a plan covers: the whole town, listed compounds, buildings or units,
    or every unit now in a zone level; narrowed, with ``tags``, to households where one
    resident carries all of them (``["elderly", "living_alone"]``, ``["infant"]``)."""

    kind: PlanScopeKind
    ids: list[uuid.UUID] = Field(
        default_factory=list,
        max_length=1_000,
        description="The compounds, buildings or units; for a zone level, optionally the "
        "compounds it is narrowed to (a committee's own sealed households). One named twice "
        "counts once (the plan keeps and shows each id once, in the order first given)",
    )
    zone_level: Literal["sealed", "controlled", "precaution"] | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=5)

    @model_validator(mode="after")
    def _complete(self) -> "PlanScope":
        # A place pasted twice into a list is the same place: kept once, first place first.
        self.ids = list(dict.fromkeys(self.ids))
        self.tags = list(dict.fromkeys(self.tags))
        if self.kind == "zone_level" and self.zone_level is None:
            raise ValueError("a zone_level scope needs zone_level")
        if self.kind in ("compounds", "buildings", "units") and not self.ids:
            raise ValueError(f"a {self.kind} scope needs ids")
        return self


class PlanScopeIn(PlanScope):
    """A scope as a request states it: `ids` for compounds, buildings or units, or the
    compounds a zone level is narrowed to, and `zone_level` only for a zone-level scope. What
    the kind would leave unread is refused (422 naming it), since it was meant: a town-wide
    plan sent with a compound's id was meant for that compound, not for every household of
    the town."""

    @field_validator("ids")
    @classmethod
    def _ids_of_places(cls, ids: list[uuid.UUID], info: ValidationInfo) -> list[uuid.UUID]:
        if ids and info.data.get("kind") == "town":
            raise ValueError(
                "a town scope takes no ids: it covers the whole town; for listed places use "
                "the kind compounds, buildings or units"
            )
        return ids

    @field_validator("zone_level")
    @classmethod
    def _level_of_zones(cls, level: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("kind")
        if level is not None and kind is not None and kind != "zone_level":
            raise ValueError(f"a {kind} scope takes no zone_level: use the kind zone_level")
        return level


class TagAddition(BaseModel):
    tag: Tag
    per_person: int = Field(1, ge=1, le=100, description="Added for each resident with the tag")


class PlanLine(BaseModel):
    """The allocation rule of one item (or kit) as data: ``per_household`` for every
    household, ``large_household_portions`` instead from ``large_household_size`` people
    (the field's rule: 6 people count as two packages), plus ``additions`` per resident with
    a tag (one formula tin per infant). With ``only_tags`` the line goes only to households
    where someone carries one of them. A line with ``per_household`` 0 is per person only:
    the large-household defaults do not apply to it (its ``large_household_size`` is null)
    unless the line sets ``large_household_size`` or ``large_household_portions`` itself.
    Left out, ``large_household_portions`` is twice ``per_household`` (three bottles a
    household: six from six people), never fewer than a small household gets."""

    item_id: uuid.UUID
    label: FreeText | None = Field(None, max_length=80, description="Shown on pick lists")
    per_household: int = Field(
        1, ge=0, le=100, description="For every household; 0: the line is per person only"
    )
    large_household_size: int | None = Field(
        6,
        ge=2,
        le=50,
        description="From this many people a household gets `large_household_portions` "
        "instead; null: no such rule. Left out on a line with `per_household` 0, null.",
    )
    large_household_portions: int = Field(
        2,
        ge=0,
        le=200,
        description="What a large household gets instead of `per_household`: left out, twice "
        "`per_household` (2 for one package); fewer than `per_household` is refused (422)",
    )
    additions: list[TagAddition] = Field(default_factory=list, max_length=10)
    only_tags: list[Tag] = Field(default_factory=list, max_length=10)

    @model_validator(mode="after")
    def _per_person_only(self) -> "PlanLine":
        # Defaults meant for packages must not hand a large household's portions of a
        # per-person item (two formula tins more to a family of seven).
        explicit = {"large_household_size", "large_household_portions"} & self.model_fields_set
        if self.per_household == 0 and not explicit:
            self.large_household_size = None
        if self.per_household > 0 and "large_household_portions" not in self.model_fields_set:
            # The field's rule: a large household counts as two households.
            self.large_household_portions = 2 * self.per_household
        return self


class PlanLineIn(PlanLine):
    """A line as a request states it: a large household is never given fewer than a small
    one (422 naming `large_household_portions`)."""

    @field_validator("large_household_portions")
    @classmethod
    def _not_fewer(cls, portions: int, info: ValidationInfo) -> int:
        per_household = info.data.get("per_household")
        if (
            info.data.get("large_household_size") is not None
            and per_household is not None
            and portions < per_household
        ):
            raise ValueError(
                f"a large household would get {portions}, fewer than the {per_household} "
                "every household gets: give at least per_household (twice it by the rule)"
            )
        return portions


class PlanCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "town_id": "0193a1c2-0000-7000-8000-000000000001",
                    "name": "Supply packages, week 2",
                    "scope": {"kind": "compounds", "ids": ["0193a1c2-0000-7000-8000-00000000000c"]},
                    "lines": [
                        {
                            "item_id": "0193a1c2-0000-7000-8000-0000000000f1",
                            "label": "Supply package",
                            "per_household": 1,
                            "large_household_size": 6,
                            "large_household_portions": 2,
                        },
                        {
                            "item_id": "0193a1c2-0000-7000-8000-0000000000f2",
                            "label": "Infant formula tin",
                            "per_household": 0,
                            "large_household_size": None,
                            "additions": [{"tag": "infant", "per_person": 1}],
                            "only_tags": ["infant"],
                        },
                    ],
                }
            ]
        }
    )

    town_id: uuid.UUID
    name: Name = Field(
        max_length=120,
        description="Stripped; blank is refused",
        examples=["Supply packages, week 2"],
    )
    scope: PlanScopeIn
    lines: list[PlanLineIn] = Field(min_length=1, max_length=20)

    @model_validator(mode="after")
    def _distinct_items(self) -> "PlanCreate":
        items = [line.item_id for line in self.lines]
        if len(set(items)) != len(items):
            raise ValueError("each item may appear on one line only")
        return self


class TopUpCreate(BaseModel):
    name: Name | None = Field(
        None,
        max_length=120,
        description="By default the original's name with “top-up”; blank is refused",
        examples=["Supply packages, week 2 (late registrations)"],
    )


class PlanCancel(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"reason": "planned twice: week 2 is already out"}]}
    )

    reason: Stated = Field(
        max_length=500,
        description="Why it is cancelled; stripped, blank is refused",
        examples=["planned twice: week 2 is already out"],
    )


class PlanOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    top_up_of: uuid.UUID | None
    town_id: uuid.UUID
    compound_id: uuid.UUID | None
    name: str
    scope: PlanScope = Field(
        description="Its scope; of a plan placed above your scope (the town office's over "
        "several committees), the places in yours only"
    )
    lines: list[PlanLine]
    households: int = Field(
        description="Households it allocates to; of a plan placed above your scope, only "
        "those in yours"
    )
    created_by: str
    created_at: datetime
    cancelled_at: datetime | None = None
    cancelled_by: str | None = None
    cancel_reason: str | None = None

    @computed_field(  # type: ignore[prop-decorator]
        description="`planned`: households are being delivered to; `cancelled`: nobody is to "
        "be delivered any more (`cancelled_at`, `cancelled_by` and `cancel_reason` say when, "
        "by whom and why)"
    )
    @property
    def status(self) -> Literal["planned", "cancelled"]:
        return "planned" if self.cancelled_at is None else "cancelled"


class PendingHousehold(BaseModel):
    household_id: uuid.UUID
    household_code: str | None
    room: str | None
    unit_id: uuid.UUID | None
    unit_code: str | None
    status: Literal["pending", "undelivered", "cancelled"] = Field(
        description="`pending`: still to deliver (at the door when `door_delivery`); "
        "`undelivered`: tried without success (`reason`); `cancelled`: the plan was cancelled "
        "before it was delivered, nobody is to deliver it"
    )
    reason: str | None
    door_delivery: bool
    door_reason: str | None


class UndeliveredBuilding(BaseModel):
    building_id: uuid.UUID | None
    building_code: str | None
    households: list[PendingHousehold]
