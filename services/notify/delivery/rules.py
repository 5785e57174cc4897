"""When a message may go: quiet hours in the town's time zone, validity, backoff."""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from shared.supervision import capped_backoff


def quiet_until(
    now: datetime, *, window: tuple[time, time] | None, zone: ZoneInfo
) -> datetime | None:
    """The end of the quiet hours ``now`` falls in (an aware datetime), or None outside them.
    A window may run over midnight (22:00–07:00) or not (13:00–14:00)."""
    if window is None:
        return None
    start, end = window
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    if start <= end:
        inside = start <= clock < end
        end_day = local.date()
    else:
        inside = clock >= start or clock < end
        end_day = local.date() + timedelta(days=1) if clock >= start else local.date()
    if not inside:
        return None
    return datetime.combine(end_day, end, tzinfo=zone)


def next_morning(now: datetime, *, window: tuple[time, time] | None, zone: ZoneInfo) -> datetime:
    """When tomorrow's sending starts: the end of tomorrow's quiet hours, or local midnight
    (a per-day cap's next day)."""
    local = now.astimezone(zone)
    tomorrow = local.date() + timedelta(days=1)
    start = window[1] if window is not None and window[0] > window[1] else time(0)
    return datetime.combine(tomorrow, start, tzinfo=zone)


def retry_at(now: datetime, *, attempts: int, base: float, cap: float) -> datetime:
    """Exponential backoff with jitter after ``attempts`` tries (shared.supervision's)."""
    return now + timedelta(seconds=capped_backoff(attempts, base=base, cap=cap))
