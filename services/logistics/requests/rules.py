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


# The words volunteers write (as the demo's and the field's ledgers have them), each a
# time range of the town's day or a set of days.
_PERIODS = {
    word: times
    for words, times in (
        (("morning", "mornings", "上午", "早上"), (time(6), time(12))),
        (("afternoon", "afternoons", "下午"), (time(12), time(18))),
        (("evening", "evenings", "晚上", "傍晚"), (time(18), time(22))),
        (("night", "nights", "夜间", "夜里", "夜班"), (time(22), time(6))),
    )
    for word in words
}
_DAY_WORDS = {
    "weekday": frozenset(range(5)),
    "weekdays": frozenset(range(5)),
    "工作日": frozenset(range(5)),
    "weekend": frozenset({5, 6}),
    "weekends": frozenset({5, 6}),
    "周末": frozenset({5, 6}),
}
_ANY_TIME = {"any time", "anytime", "always", "all day", "全天", "随时", "任何时间"}
# Entries are separated by ";" or as people join them ("evenings and weekends", "上午、周末").
_SEPARATORS = re.compile(r";|,\s+and\s+|\s+and\s+|、|，|和")


def _days(text: str) -> frozenset[int]:
    found: set[int] = set()
    for part in filter(None, re.split(r"[,\s]+", text)):
        word = part.lower()
        if word in _DAY_WORDS:
            found.update(_DAY_WORDS[word])
            continue
        first, _, last = word.partition("-")
        if first[:3] not in DAYS or (last and last[:3] not in DAYS):
            raise UnreadableAvailability(f"not a day: {text!r}")
        a = DAYS.index(first[:3])
        b = DAYS.index(last[:3]) if last else a
        found.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(found)


def _times(word: str) -> tuple[time, time] | None:
    """A time range (``08:00-18:00``; ``24:00`` ends the day) or a period's word."""
    if word.lower() in _PERIODS:
        return _PERIODS[word.lower()]
    match = _RANGE.match(word)
    if not match:
        return None
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise UnreadableAvailability(f"not a time range: {word!r}")
    return time(h1, m1), time.max if h2 == 24 else time(h2, m2)


def windows(availability: str) -> list[Window]:
    """A volunteer's availability: ``""`` or "any time" is any time; otherwise windows,
    each days, a time range or both: ``"mon-fri 08:00-18:00; sat,sun"``, ``"20:00-06:00"``
    (a range past midnight ends the next morning), or as people write them: ``"weekdays
    mornings"``, ``"evenings and weekends"``, ``"晚上、周末"``. Local time of the town."""
    found = []
    for entry in filter(None, (e.strip() for e in _SEPARATORS.split(availability))):
        if entry.lower() in _ANY_TIME:
            found.append(Window(frozenset(range(7)), None, None))
            continue
        words = entry.split()
        start = end = None
        if (times := _times(words[-1])) is not None:
            start, end = times
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
