"""Integrity errors as problems a caller can act on: the database's unique constraints are
the last word on what is taken (a check by a scoped query cannot see another town's rows, and
a concurrent request can win between the check and the write), so the boundary turns the
violation itself into a 409 naming the request's field.

The constraint is found by its name on PostgreSQL (the naming convention of
``shared.db.NAMING_CONVENTION``, looked up in the service's metadata) and by the table and
columns SQLite states in its message; both lead to the same columns, hence the same answer."""

import re
from dataclasses import dataclass

from sqlalchemy import Index, MetaData, PrimaryKeyConstraint, UniqueConstraint
from sqlalchemy.exc import IntegrityError

from shared.problems import Conflict

# SQLSTATE class 23 (integrity constraint violation) on PostgreSQL.
_UNIQUE, _FOREIGN_KEY = "23505", "23503"
_SQLITE = re.compile(r"(?P<kind>UNIQUE|PRIMARY KEY|NOT NULL|CHECK) constraint failed: (?P<what>.+)")


@dataclass(frozen=True)
class Violation:
    kind: str  # unique, foreign_key or other
    table: str | None
    columns: tuple[str, ...]


def integrity_conflict(exc: IntegrityError, metadata: MetaData) -> Conflict:
    """The 409 problem for a violated constraint, naming the fields it concerns."""
    violation = _violation(exc, metadata)
    fields = _fields(_as_requested(metadata, violation))
    what = violation.table.replace("_", " ") if violation.table else "records"
    if violation.kind == "unique" and fields:
        detail = f"{' and '.join(fields)} already taken by another of the {what}"
    elif violation.kind == "foreign_key":
        detail = f"this refers to something that does not exist, or is still referred to ({what})"
    else:
        detail = f"this conflicts with the {what} recorded already"
    return Conflict(detail, errors=[{"field": f, "message": detail} for f in fields] or None)


def _as_requested(metadata: MetaData, violation: Violation) -> tuple[str, ...]:
    """The columns by the request's names: a column stored under another name than the
    field it holds says which (``info={"field": ...}``: ``weekdays_key`` holds ``weekdays``)."""
    table = next((t for t in metadata.tables.values() if t.name == violation.table), None)
    if table is None:
        return violation.columns
    return tuple(table.c[c].info.get("field", c) if c in table.c else c for c in violation.columns)


def _fields(columns: tuple[str, ...]) -> list[str]:
    """What the caller named: the constraint's own columns, not the places it is unique
    within (``uq_grids_town_id_code`` is about ``code``); all of them when all are ids."""
    own = [c for c in columns if not c.endswith("_id")]
    return own or list(columns)


def _violation(exc: IntegrityError, metadata: MetaData) -> Violation:
    # asyncpg's error, as raised by a COPY or under SQLAlchemy's adapter.
    for error in (exc.orig, getattr(exc.orig, "__cause__", None)):
        if getattr(error, "constraint_name", None) or getattr(error, "table_name", None):
            name = getattr(error, "constraint_name", None)
            table, columns = _constraint(metadata, name) if name else (None, ())
            table = table or getattr(error, "table_name", None)
            state = getattr(error, "sqlstate", None)
            kind = {_UNIQUE: "unique", _FOREIGN_KEY: "foreign_key"}.get(state or "", "other")
            return Violation(kind, table, columns)
    message = str(exc.orig)
    if "FOREIGN KEY constraint failed" in message:
        return Violation("foreign_key", None, ())
    found = _SQLITE.search(message)
    if found is None:
        return Violation("other", None, ())
    kind = "unique" if found["kind"] in ("UNIQUE", "PRIMARY KEY") else "other"
    qualified = [part.strip() for part in found["what"].split(",")]
    if not all("." in part for part in qualified):
        # An index on expressions, or a named CHECK: SQLite gives only its name.
        return Violation(kind, *_constraint(metadata, found["what"].strip()))
    table = qualified[0].split(".")[0]
    return Violation(kind, table, tuple(part.split(".", 1)[1] for part in qualified))


def _constraint(metadata: MetaData, name: str) -> tuple[str | None, tuple[str, ...]]:
    """The table and columns of the unique constraint or index of that name."""
    for table in metadata.tables.values():
        candidates: list[UniqueConstraint | PrimaryKeyConstraint | Index] = [
            c for c in table.constraints if isinstance(c, UniqueConstraint | PrimaryKeyConstraint)
        ]
        candidates += [i for i in table.indexes if i.unique]
        for candidate in candidates:
            if candidate.name == name:
                return table.name, tuple(c.name for c in candidate.columns)
    return None, ()
