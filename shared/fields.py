"""The kernel's input types, used by every service's request schemas, so what a request
carries can be stored, exported and compared on every backend:

- :data:`FreeText`: free text (names, notes, reasons) without the control characters that
  a spreadsheet (XML) cannot hold and PostgreSQL refuses (NUL);
- :data:`Name`: free text that names something (an item, a kit, a donor), stripped of
  surrounding whitespace and refused when nothing is left;
- :data:`Stated`: free text that must say something (a reason), held as a name is;
- :data:`Moment`: a date and time with its UTC offset (a time without one means a different
  instant to each reader), normalised to UTC so every answer states times in UTC (``Z``);
- :data:`Finite`: a number (float) that is one: JSON as Python reads it accepts ``NaN`` and
  ``Infinity``, which no reading is, no range check refuses clearly and no JSON answer can
  carry back; refused as "a finite number";
- :class:`Patch`: the base of a PATCH body, which refuses a field it does not know;
- :class:`FieldError`: what a model's own validator raises about one of its fields (a rule
  across fields: a transport's reason, an end before its start), so the 422 names that
  field and not the whole body.

The text and time types show their rule in the OpenAPI as a ``pattern``, so clients and
fuzzers see it too."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    AllowInfNan,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    GetJsonSchemaHandler,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from shared.spreadsheets import UNPRINTABLE

# Lone surrogates are refused too, but no JSON text carries them as characters, and a
# pattern naming them is one that generators of test data cannot use.
# The body of a character class of the printable characters.
_ALLOWED = "^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\ufffe\\uffff"
PRINTABLE_PATTERN = f"^[{_ALLOWED}]*$"
# Printable text with at least one character that is not whitespace (no lookahead: test-data
# generators read the pattern too).
NAMED_PATTERN = f"^[{_ALLOWED}]*[^\\s{_ALLOWED[1:]}][{_ALLOWED}]*$"
# RFC 3339 times end in Z or an offset; the pattern says so where `format` is not checked.
ZONED_PATTERN = "(Z|z|[+-][0-9]{2}:[0-9]{2})$"


class _Pattern:
    """Adds a pattern to a type's JSON schema without replacing the rest of it."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema["pattern"] = self.pattern
        return schema


def _printable(value: str) -> str:
    found = UNPRINTABLE.search(value)
    if found is not None:
        raise ValueError(
            f"contains a control character (U+{ord(found.group()):04X}) that a spreadsheet "
            "cannot hold; remove it"
        )
    return value


def _not_blank(advice: str) -> Callable[[str], str]:
    """Stripped of surrounding whitespace; refused, with ``advice``, when nothing is left."""

    def check(value: str) -> str:
        stripped = value.strip()
        if not stripped:
            raise ValueError(f"is blank: {advice}")
        return stripped

    return check


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


FreeText = Annotated[str, AfterValidator(_printable), _Pattern(PRINTABLE_PATTERN)]
# Stripped: "  Rice " is stored as "Rice", and "   " is no name at all (a 422, not "").
Name = Annotated[
    str,
    AfterValidator(_printable),
    AfterValidator(_not_blank("give a name")),
    _Pattern(NAMED_PATTERN),
]
Stated = Annotated[
    str,
    AfterValidator(_printable),
    AfterValidator(_not_blank("say it in words")),
    _Pattern(NAMED_PATTERN),
]
Moment = Annotated[AwareDatetime, AfterValidator(_utc), _Pattern(ZONED_PATTERN)]
# Every float a request takes: NaN and the infinities are a 422 naming the field.
Finite = Annotated[float, AllowInfNan(False)]


class FieldError(ValueError):
    """A model validator's refusal of one field, given a rule across several: the problem
    answer's ``errors`` name ``field`` (``shared.http`` reads it), not the body."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Patch(BaseModel):
    """A PATCH body: a field it does not accept is a 422 naming it, not silently dropped
    (the caller meant to change it, and would otherwise read 200 as done)."""

    model_config = ConfigDict(extra="forbid")
