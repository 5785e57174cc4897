import uuid

from pydantic import BaseModel, ConfigDict, Field

from services.registry.models import PersonKind
from shared.auth import Role


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class ScopeOut(BaseModel):
    kind: str
    towns: list[uuid.UUID]
    committees: list[uuid.UUID]
    compounds: list[uuid.UUID]
    buildings: list[uuid.UUID]


class Me(BaseModel):
    id: str
    username: str
    role: Role
    scope: ScopeOut


class UserCreate(BaseModel):
    username: str = Field(min_length=3, max_length=80, pattern=r"^[\w.@\-]+$")
    password: str = Field(min_length=10, max_length=200)
    role: Role
    town_id: uuid.UUID
    committee_id: uuid.UUID | None = Field(default=None, description="Required for committee staff")
    person_kind: PersonKind | None = Field(
        default=None, description="The staff member or volunteer this account belongs to"
    )
    person_id: uuid.UUID | None = None


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    username: str
    role: Role
    town_id: uuid.UUID
    committee_id: uuid.UUID | None
    person_kind: PersonKind | None
    person_id: uuid.UUID | None
    active: bool
