import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.registry.models import PersonKind
from shared.auth import Role
from shared.fields import FreeText, Patch


class Token(BaseModel):
    access_token: str = Field(description="Send as `Authorization: Bearer ...`")
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds the access token lives (at most 15 minutes)")
    refresh_token: str = Field(
        description="Spend it at /v1/auth/refresh for a new pair, once: a second use ends "
        "the session"
    )
    refresh_expires_in: int = Field(description="Seconds until the session ends")


class TokenForm(BaseModel):
    """The OAuth2 token request (a form): a password, or a refresh token to spend."""

    grant_type: Literal["password", "refresh_token"] = "password"
    username: str | None = Field(default=None, max_length=200)
    password: str | None = Field(
        default=None, max_length=200, json_schema_extra={"format": "password"}
    )
    refresh_token: str | None = Field(default=None, max_length=200)
    scope: str = ""


class RefreshIn(BaseModel):
    refresh_token: FreeText = Field(min_length=1, max_length=200)


class PasswordChange(BaseModel):
    current_password: FreeText = Field(max_length=200)
    new_password: FreeText = Field(min_length=10, max_length=200)


class ScopeOut(BaseModel):
    kind: str
    towns: list[uuid.UUID]
    committees: list[uuid.UUID]
    compounds: list[uuid.UUID]
    buildings: list[uuid.UUID]
    entire_compounds: list[uuid.UUID] = Field(
        default_factory=list, description="Compounds assigned whole: every building of theirs"
    )


class Me(BaseModel):
    id: str
    username: str
    role: Role
    scope: ScopeOut
    time_zone: str = Field(
        description="The town office's clock (IANA name): show times in it",
        examples=["Asia/Shanghai"],
    )


class UserCreate(BaseModel):
    username: str = Field(min_length=3, max_length=80, pattern=r"^[\w.@\-]+$")
    password: str = Field(min_length=10, max_length=200, json_schema_extra={"format": "password"})
    role: Role
    town_id: uuid.UUID
    committee_id: uuid.UUID | None = Field(default=None, description="Required for committee staff")
    person_kind: PersonKind | None = Field(
        default=None, description="The staff member or volunteer this account belongs to"
    )
    person_id: uuid.UUID | None = None


class UserUpdate(Patch):
    """What changes; every change ends the account's access tokens at once."""

    role: Role | None = None
    committee_id: uuid.UUID | None = None
    password: FreeText | None = Field(default=None, min_length=10, max_length=200)


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
