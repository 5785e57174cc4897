import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.fields import FreeText

Locale = Literal["zh-CN", "en"]
# The glossary types (templates/glossary.py) show their value as a word of the locale.
VariableType = Literal["str", "int", "datetime", "date", "zone_level", "request_kind"]
KEY_PATTERN = r"^[a-z][a-z0-9_]{1,79}$"
# SMS gateways take at most 500 characters for one (long) message, signature included: a
# text pasted in by mistake must not cost hundreds of segments per resident.
TEXT_MAX = 500
Text = Annotated[FreeText, Field(max_length=TEXT_MAX)]


class TemplateCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "town_id": "0193a1c2-0000-7000-8000-000000000001",
                    "key": "water_cut",
                    "description": "Water cut in a building",
                    "variables": {"building": "str", "time": "datetime"},
                    "texts": {
                        "zh-CN": "{building}号楼将于{time}停水，请提前储水。",
                        "en": "Building {building}: water cut at {time}, please store water.",
                    },
                }
            ]
        }
    )

    town_id: uuid.UUID
    key: FreeText = Field(pattern=KEY_PATTERN, examples=["water_cut"])
    description: FreeText = Field(default="", max_length=200)
    variables: dict[FreeText, VariableType] = Field(
        default_factory=dict, description="Variable name → type"
    )
    texts: dict[Locale, Text] = Field(
        description="Locale → text with {variable} placeholders; zh-CN is required"
    )


class TemplateEdit(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "town_id": "0193a1c2-0000-7000-8000-000000000001",
                    "variables": {"area": "str", "time": "datetime"},
                    "texts": {
                        "zh-CN": "{area}自{time}起封控，请居家。",
                        "en": "{area}: sealed from {time}.",
                    },
                }
            ]
        }
    )

    town_id: uuid.UUID
    description: FreeText | None = Field(default=None, max_length=200)
    variables: dict[FreeText, VariableType]
    texts: dict[Locale, Text]


class Preview(BaseModel):
    town_id: uuid.UUID
    version: int | None = Field(default=None, ge=1, description="The current one when empty")
    variables: dict[FreeText, Any] = Field(default_factory=dict)


class Length(BaseModel):
    """A text as the provider bills it, the signature included."""

    locale: str
    text: str
    encoding: Literal["gsm7", "ucs2"]
    units: int = Field(description="Septets (GSM-7) or UTF-16 units (UCS-2), signature included")
    segments: int


class TemplateOut(BaseModel):
    key: str
    version: int
    built_in: bool
    description: str
    variables: dict[str, str]
    texts: dict[str, str]
    signature: str
    lengths: list[Length] = Field(
        description="Each text with its placeholders unfilled: what it costs before variables"
    )
    created_by: str | None = None
    created_at: datetime | None = None


class PreviewOut(BaseModel):
    key: str
    version: int
    texts: list[Length]
