"""Typed template variables: checked when a broadcast or rule is made (a missing or mistyped
variable is the caller's 4xx then, not a failure at send time), and rendered per locale."""

import string
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter, ValidationError

from services.notify.templates.glossary import NAMES, values_of
from shared.fields import FreeText

LOCALES = ("zh-CN", "en")
DEFAULT_LOCALE = "zh-CN"
# A glossary type (a zone level, a help request's kind) shows its value as a word.
VARIABLE_TYPES = ("str", "int", "datetime", "date", *NAMES)
ZONE_LEVELS = values_of("zone_level")
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_AWARE = TypeAdapter(datetime)
_DATE = TypeAdapter(date)
_TEXT = TypeAdapter(FreeText)
VALUE_MAX = 200
# Every clock is within a day of UTC: a time this far from the calendar's ends can be shown
# on any town's clock (9999-12-31 23:59 UTC is next year in Beijing, which Python cannot hold).
_SHOWABLE = (
    datetime.min.replace(tzinfo=UTC) + timedelta(days=1),
    datetime.max.replace(tzinfo=UTC) - timedelta(days=1),
)


def placeholders(text: str) -> list[str]:
    """The variable names a text uses; a ValueError for anything but plain ``{name}``."""
    names = []
    for _, name, spec, conversion in string.Formatter().parse(text):
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ValueError(f"{{{name}}} is not a plain {{variable}} placeholder")
        names.append(name)
    return names


def showable(moment: datetime) -> datetime:
    """The time if every clock can show it; a ValueError at the calendar's ends."""
    if moment.tzinfo is not None and not _SHOWABLE[0] <= moment <= _SHOWABLE[1]:
        raise ValueError("must be a date and time between the years 1 and 9999")
    return moment


def _typed(kind: str, value: Any) -> Any:
    """The value as its declared type; a ValueError saying what was expected."""
    match kind:
        case "str":
            if not isinstance(value, str) or not value.strip():
                raise ValueError("must be a non-empty string")
            if len(value) > VALUE_MAX:
                # A value fills a placeholder of a text held to what one SMS can carry.
                raise ValueError(f"must be at most {VALUE_MAX} characters")
            try:
                # An SMS carries no control character (PostgreSQL stores no NUL either).
                return _TEXT.validate_python(value)
            except ValidationError as exc:
                raise ValueError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
        case "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError("must be an integer")
            return value
        case "datetime":
            try:
                moment = _AWARE.validate_python(value)
            except ValidationError:
                raise ValueError("must be a date and time with its UTC offset") from None
            if moment.tzinfo is None:
                raise ValueError("must be a date and time with its UTC offset")
            return showable(moment)
        case "date":
            if isinstance(value, datetime):
                raise ValueError("must be a date (YYYY-MM-DD)")
            try:
                return _DATE.validate_python(value)
            except ValidationError:
                raise ValueError("must be a date (YYYY-MM-DD)") from None
        case _:
            if value not in values_of(kind):
                raise ValueError(f"must be one of {', '.join(values_of(kind))}")
            return value


def check_values(
    variables: dict[str, str], values: dict[str, Any], *, field: str
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The values as their declared types, and an error per missing, unknown or mistyped
    variable (each naming ``field.<name>``)."""
    typed: dict[str, Any] = {}
    errors = [
        {"field": f"{field}.{name}", "message": f"missing variable {name} ({kind})"}
        for name, kind in variables.items()
        if name not in values
    ]
    errors += [
        {"field": f"{field}.{name}", "message": f"the template has no variable {name}"}
        for name in values
        if name not in variables
    ]
    for name, value in values.items():
        if name in variables:
            try:
                typed[name] = _typed(variables[name], value)
            except ValueError as exc:
                errors.append({"field": f"{field}.{name}", "message": f"{name} {exc}"})
    return typed, errors


def _shown(kind: str, value: Any, *, locale: str, zone: ZoneInfo) -> str:
    if kind == "datetime":
        local = value.astimezone(zone)
        if locale == "en":
            return f"{local.day} {_MONTHS[local.month - 1]} {local:%H:%M}"
        return f"{local.month}月{local.day}日 {local:%H:%M}"
    if kind == "date":
        if locale == "en":
            return f"{value.day} {_MONTHS[value.month - 1]}"
        return f"{value.month}月{value.day}日"
    if kind in NAMES:
        # A value checked under an older type (a broadcast's free text before its template's
        # variable was retyped) shows as it was written.
        return NAMES[kind][locale].get(value, str(value))
    return str(value)


def render(
    text: str, *, variables: dict[str, str], values: dict[str, Any], locale: str, zone: ZoneInfo
) -> str:
    """The text with each placeholder replaced by its (checked, typed) value as the locale
    writes it; times on ``zone``, the town office's clock (``Settings.zone``)."""
    shown = {
        name: _shown(kind, values[name], locale=locale, zone=zone)
        for name, kind in variables.items()
    }
    return text.format_map(shown)


def jsonable(values: dict[str, Any]) -> dict[str, Any]:
    """Typed values as stored with a broadcast (times and dates in ISO form)."""
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in values.items()}
