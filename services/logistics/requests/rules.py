"""The rules of help requests as pure functions: priority from the kind and the resident's
tags, the due time per priority, and when a volunteer is available."""

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

ORDER = ("normal", "high", "urgent")
# Tags that make a resident vulnerable: each raises their request one level.
VULNERABLE = frozenset({"dialysis", "pregnant", "infant", "newborn", "living_alone", "disabled"})
# Kinds that are about health may reach urgent by tags; the others stop at high.
MEDICAL = frozenset({"medicine_run", "medical_transport", "baby_supplies"})
BASE = {
    "medicine_run": "normal",
    "baby_supplies": "normal",
    "groceries": "normal",
    "medical_transport": "high",
    "other": "normal",
}
# Skills a volunteer needs for an errand of the kind (any one of them); none: anyone.
SKILLS: dict[str, frozenset[str]] = {"medical_transport": frozenset({"driving", "driver", "驾驶"})}
INFANT_TAGS = frozenset({"infant", "newborn"})


def priority(*, kind: str, reason: str | None, tags: set[str], household_tags: set[str]) -> str:
    """An emergency transport, or baby supplies for a household with an infant (formula
    within the hour), is urgent; otherwise the kind's base, one level up for a vulnerable
    resident (capped at high for groceries and other)."""
    if kind == "medical_transport" and reason == "emergency":
        return "urgent"
    if kind == "baby_supplies" and (INFANT_TAGS & (tags | household_tags)):
        return "urgent"
    level = ORDER.index(BASE[kind])
    if tags & VULNERABLE:
        level += 1
    cap = ORDER.index("urgent" if kind in MEDICAL else "high")
    return ORDER[min(level, cap)]


def target(priority: str, *, urgent: int, high: int, normal: int) -> timedelta:
    minutes = {"urgent": urgent, "high": high, "normal": normal}[priority]
    return timedelta(minutes=minutes)


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


class UnreadableAvailability(ValueError):
    pass


@dataclass(frozen=True)
class Window:
    days: frozenset[int]
    start: time | None
    end: time | None

    def holds(self, local: datetime) -> bool:
        if self.start is None or self.end is None:
            return local.weekday() in self.days
        now = local.time()
        if self.start <= self.end:
            return local.weekday() in self.days and self.start <= now < self.end
        # A night window (20:00-06:00) belongs to the day it starts on.
        if now >= self.start:
            return local.weekday() in self.days
        return (local - timedelta(days=1)).weekday() in self.days and now < self.end


def _days(text: str) -> frozenset[int]:
    found: set[int] = set()
    for part in text.split(","):
        first, _, last = part.strip().lower().partition("-")
        if first[:3] not in DAYS or (last and last[:3] not in DAYS):
            raise UnreadableAvailability(f"not a day: {part.strip()!r}")
        a = DAYS.index(first[:3])
        b = DAYS.index(last[:3]) if last else a
        found.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(found)


def windows(availability: str) -> list[Window]:
    """A volunteer's availability: ``""`` is any time; otherwise windows separated by ``;``,
    each days, a time range or both: ``"mon-fri 08:00-18:00; sat,sun"``, ``"20:00-06:00"``
    (a range past midnight ends the next morning). Local time of the town."""
    found = []
    for entry in filter(None, (e.strip() for e in availability.split(";"))):
        words = entry.split()
        match = _RANGE.match(words[-1])
        start = end = None
        if match:
            h1, m1, h2, m2 = (int(g) for g in match.groups())
            if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59:
                raise UnreadableAvailability(f"not a time range: {words[-1]!r}")
            start, end = time(h1, m1), time(h2 % 24, m2)
            words = words[:-1]
        days = _days(" ".join(words)) if words else frozenset(range(7))
        found.append(Window(days, start, end))
    return found


def available(availability: str, *, at: datetime, zone: ZoneInfo) -> bool:
    """Whether the availability holds at ``at``; text in no known format never does (the
    volunteer is then not suggested until it is written in the format)."""
    if not availability.strip():
        return True
    try:
        found = windows(availability)
    except UnreadableAvailability:
        return False
    local = at.astimezone(zone)
    return any(w.holds(local) for w in found)
