import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.notify.templates.schemas import KEY_PATTERN, Length
from shared.fields import FieldError, FreeText, Moment

ScopeKind = Literal["town", "compounds", "buildings", "units", "zone_level", "tag", "residents"]
PriorityName = Literal["urgent", "high", "normal", "bulk"]


class BroadcastScope(BaseModel):
    """Whom a broadcast reaches: the whole town; listed compounds, buildings, units or
    residents; or the residents of a zone level or with a tag, in the town or (``ids``) in
    listed compounds."""

    kind: ScopeKind
    ids: list[uuid.UUID] = Field(default_factory=list)
    zone_level: Literal["sealed", "controlled", "precaution"] | None = None
    tag: FreeText | None = Field(default=None, pattern=r"^[a-z_]{1,40}$", examples=["elderly"])

    @model_validator(mode="after")
    def _complete(self) -> "BroadcastScope":
        if self.kind in ("compounds", "buildings", "units", "residents") and not self.ids:
            raise FieldError("ids", f"a {self.kind} scope needs ids")
        if self.kind == "zone_level" and self.zone_level is None:
            raise FieldError("zone_level", "a zone_level scope needs zone_level")
        if self.kind == "tag" and self.tag is None:
            raise FieldError("tag", "a tag scope needs tag")
        if self.kind == "town" and self.ids:
            raise FieldError("ids", "a town scope takes no ids")
        return self

    @property
    def town_wide(self) -> bool:
        """Everyone in the town, or a level or tag across it: needs a second operator."""
        return self.kind == "town" or (self.kind in ("zone_level", "tag") and not self.ids)


class BroadcastCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "town_id": "0193a1c2-0000-7000-8000-000000000001",
                    "scope": {"kind": "compounds", "ids": ["0193a1c2-0000-7000-8000-00000000000c"]},
                    "template_key": "round_scheduled",
                    "variables": {
                        "round": "Night round",
                        "start": "2022-04-02T05:00:00+08:00",
                        "end": "2022-04-02T11:00:00+08:00",
                    },
                    "priority": "high",
                    "valid_until": "2022-04-02T09:00:00+08:00",
                }
            ]
        }
    )

    town_id: uuid.UUID
    scope: BroadcastScope
    template_key: FreeText = Field(pattern=KEY_PATTERN, examples=["round_scheduled"])
    variables: dict[FreeText, Any] = Field(default_factory=dict)
    priority: PriorityName = "normal"
    optional: bool | None = Field(
        default=None,
        description="Skip residents who opted out; by default bulk and normal broadcasts are "
        "optional, high and urgent ones are not (an urgent one never is)",
    )
    send_at: Moment | None = Field(default=None, description="Now when empty")
    valid_until: Moment = Field(description="Unsent messages expire then")
    supersedes_id: uuid.UUID | None = Field(
        default=None, description="A broadcast this one replaces: what it has not sent is not"
    )

    @model_validator(mode="after")
    def _consistent(self) -> "BroadcastCreate":
        if self.send_at is not None and self.send_at >= self.valid_until:
            raise FieldError("send_at", "send_at must be before valid_until")
        if self.priority == "urgent" and self.optional:
            raise FieldError("optional", "an urgent broadcast cannot be optional")
        return self

    @property
    def is_optional(self) -> bool:
        if self.optional is not None:
            return self.optional
        return self.priority in ("bulk", "normal")


# A broadcast placed above the reader's scope (the town office's over several committees)
# shows them their part: its own counts are the whole town's.
_YOURS_NOW = "; of a broadcast placed above your scope, those in yours, counted now"


class Progress(BaseModel):
    recipients: int = Field(description="Residents in the scope when it was created" + _YOURS_NOW)
    enqueued: int = Field(
        description="Messages made; of a broadcast placed above your scope, those in yours"
    )
    skipped_no_phone: int = Field(
        description="No phone, or one that cannot receive SMS" + _YOURS_NOW
    )
    skipped_opted_out: int = Field(description="Opted out of optional messages" + _YOURS_NOW)
    states: dict[str, int] = Field(description="Its messages in your scope by state")


class BroadcastOut(BaseModel):
    id: uuid.UUID
    town_id: uuid.UUID
    committee_id: uuid.UUID | None
    compound_id: uuid.UUID | None
    scope: BroadcastScope = Field(
        description="Its scope; of a broadcast placed above your scope (the town office's over "
        "several committees), the places or residents in yours only"
    )
    town_wide: bool
    template_key: str
    template_version: int
    variables: dict[str, Any]
    priority: str
    optional: bool
    send_at: datetime
    valid_until: datetime
    status: str
    supersedes_id: uuid.UUID | None
    created_by: str
    created_at: datetime
    approved_by: str | None
    approved_at: datetime | None
    cancelled_by: str | None
    cancelled_at: datetime | None
    progress: Progress


class BroadcastPreview(BaseModel):
    town_wide: bool
    needs_approval: bool
    template_key: str
    template_version: int
    recipients: int
    by_language: dict[str, int]
    skipped_no_phone: int
    skipped_opted_out: int
    texts: list[Length]
    segments: int = Field(description="Segments all its messages cost together")
