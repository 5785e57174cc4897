"""The rules of help requests: priority from the kind and the tags, and volunteers'
availability in the documented format, in the town's time."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from services.logistics.requests.rules import UnreadableAvailability, available, priority, windows

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    ("kind", "reason", "tags", "household", "expected"),
    [
        ("baby_supplies", None, set(), {"infant"}, "urgent"),  # the formula within the hour
        ("baby_supplies", None, {"pregnant"}, set(), "high"),
        ("baby_supplies", None, set(), set(), "normal"),
        ("medical_transport", "emergency", set(), set(), "urgent"),
        ("medical_transport", "dialysis", {"dialysis"}, set(), "urgent"),
        ("medical_transport", "pregnancy", set(), set(), "high"),
        ("medicine_run", None, {"living_alone"}, set(), "high"),
        ("medicine_run", None, {"elderly"}, set(), "normal"),
        ("groceries", None, {"disabled", "dialysis"}, set(), "high"),  # capped at high
        ("groceries", None, set(), {"infant"}, "normal"),  # the household counts for baby kinds
        ("other", None, {"pregnant"}, set(), "high"),
    ],
)
def test_priority_follows_the_kind_and_the_residents_vulnerability(
    kind: str, reason: str | None, tags: set[str], household: set[str], expected: str
) -> None:
    assert priority(kind=kind, reason=reason, tags=tags, household_tags=household) == expected


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).astimezone(UTC)


@pytest.mark.parametrize(
    ("availability", "when", "expected"),
    [
        ("", "2026-12-07 03:00", True),
        ("   ", "2026-12-07 03:00", True),
        ("mon-fri 08:00-18:00", "2026-12-07 08:00", True),  # Monday
        ("mon-fri 08:00-18:00", "2026-12-07 18:00", False),
        ("mon-fri 08:00-18:00", "2026-12-12 10:00", False),  # Saturday
        ("mon-fri 08:00-18:00; sat,sun", "2026-12-12 23:00", True),
        ("20:00-06:00", "2026-12-08 05:59", True),
        ("fri 20:00-06:00", "2026-12-12 05:00", True),  # Friday's night ends on Saturday
        ("fri 20:00-06:00", "2026-12-11 05:00", False),  # Thursday's night is not Friday's
        ("sat-mon", "2026-12-07 12:00", True),  # wraps over the week's end
        ("nights only", "2026-12-07 23:00", False),  # unreadable: never suggested
        ("mon 25:00-26:00", "2026-12-07 12:00", False),
        # As people write it.
        ("any time", "2026-12-07 03:00", True),
        ("00:00-24:00", "2026-12-07 23:59", True),
        ("weekdays mornings", "2026-12-07 07:00", True),
        ("weekdays mornings", "2026-12-12 07:00", False),  # Saturday
        ("evenings and weekends", "2026-12-12 09:00", True),
        ("evenings and weekends", "2026-12-07 09:00", False),
        ("晚上、周末", "2026-12-07 19:00", True),
        ("nights", "2026-12-08 05:00", True),  # Monday's night, on Tuesday morning
    ],
)
def test_availability_is_read_in_the_towns_time(
    availability: str, when: str, expected: bool
) -> None:
    assert available(availability, at=local(when), zone=SHANGHAI) is expected


def test_unreadable_availability_says_what_it_could_not_read() -> None:
    with pytest.raises(UnreadableAvailability, match="not a day: 'nights only'"):
        windows("nights only")
