import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.notify.templates.schemas import KEY_PATTERN, Length
from shared.fields import FreeText

PriorityName = Literal["urgent", "high", "normal", "bulk"]


class RuleOut(BaseModel):
    key: str
    event_type: str
    description: str
    recipients: str
    template_key: str
    priority: str
    validity_minutes: int
    optional: bool
    enabled: bool
    provides: dict[str, str] = Field(description="The variables it fills, by type")
    changed_by: str | None = Field(None, description="Who last changed it for the town")
    changed_at: datetime | None = None


class RuleChange(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"town_id": "0193a1c2-0000-7000-8000-000000000001", "enabled": False},
            ]
        }
    )

    town_id: uuid.UUID
    enabled: bool | None = None
    template_key: FreeText | None = Field(default=None, pattern=KEY_PATTERN, examples=["sealed"])
    priority: PriorityName | None = None
    validity_minutes: int | None = Field(default=None, ge=5, le=7 * 24 * 60)


class RulePreview(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "town_id": "0193a1c2-0000-7000-8000-000000000001",
                    "payload": {
                        "town_id": "0193a1c2-0000-7000-8000-000000000001",
                        "compound_id": "0193a1c2-0000-7000-8000-00000000000c",
                        "building_id": "0193a1c2-0000-7000-8000-00000000000d",
                        "unit_id": None,
                        "from_level": None,
                        "to_level": "sealed",
                        "at": "2022-04-02T01:30:00+08:00",
                    },
                }
            ]
        }
    )

    town_id: uuid.UUID
    payload: dict[FreeText, Any] = Field(
        description="The event's payload as it would arrive (its contract's fields)"
    )


class RulePreviewOut(BaseModel):
    rule: str
    enabled: bool
    applies: bool = Field(description="Whether the rule takes such an event at all")
    template_key: str
    template_version: int
    priority: str
    recipients: int
    by_language: dict[str, int]
    skipped_no_phone: int
    skipped_opted_out: int
    texts: list[Length]
    segments: int = Field(description="Segments all its messages cost together")
