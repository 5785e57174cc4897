"""The built-in rules: which event makes which message for whom. A town can switch a rule
off or give it another template, priority or validity (``RuleSetting``); the recipients and
the variables a rule provides are its code (``rules/recipients.py``)."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rule:
    key: str
    event_type: str
    description: str
    recipients: str
    template_key: str
    priority: str
    validity_minutes: int
    # The variables it fills, by type: a template given to the rule must need no other.
    provides: dict[str, str] = field(default_factory=dict)
    # Optional messages skip residents who opted out; alerts about their safety never do.
    optional: bool = False
    # Its message tells its recipient about their own health (a retest): health data, so
    # only the roles that see health data may reveal whom it went to (shared/privacy.py).
    health: bool = False


RULES: tuple[Rule, ...] = (
    Rule(
        "round_scheduled",
        "testing.round.scheduled",
        "A screening round was scheduled",
        "the residents in the round's scope",
        "round_scheduled",
        "high",
        12 * 60,
        {"round": "str", "start": "datetime", "end": "datetime"},
    ),
    Rule(
        "pool_positive",
        "testing.pool.positive",
        "A pooled tube was positive: its members stay home for a retest at the door",
        "the pool's members",
        "pool_positive",
        "urgent",
        6 * 60,
        {"time": "datetime"},
        health=True,
    ),
    Rule(
        "case_confirmed",
        "testing.case.confirmed",
        "A case was confirmed",
        "the staff of the case's committee and the town's staff",
        "case_confirmed",
        "urgent",
        6 * 60,
        {"compound": "str", "building": "str", "time": "datetime"},
    ),
    Rule(
        "zone_sealed",
        "registry.zone.changed",
        "A building or unit was sealed",
        "the residents of the building or unit",
        "sealed",
        "urgent",
        24 * 60,
        {"area": "str", "level": "zone_level", "time": "datetime"},
    ),
    Rule(
        "zone_changed",
        "registry.zone.changed",
        "A building or unit became controlled or precaution, or its zone was lifted",
        "the residents of the building or unit",
        "zone_changed",
        "high",
        24 * 60,
        {"area": "str", "level": "zone_level", "time": "datetime"},
    ),
    Rule(
        "request_assigned",
        "logistics.request.assigned",
        "A help request was assigned to a volunteer",
        "the volunteer (assignee_id)",
        "request_assigned",
        "high",
        12 * 60,
        {"request": "request_kind", "area": "str", "due": "datetime"},
    ),
    Rule(
        "request_done",
        "logistics.request.done",
        "A help request was done",
        "the resident who asked",
        "request_done",
        "normal",
        24 * 60,
        {"request": "request_kind"},
    ),
    Rule(
        "request_overdue",
        "logistics.request.overdue",
        "A help request is overdue (level 1), escalated to its grid leader (level 2), then to "
        "the town office (level 3)",
        "level 1: the volunteer running it (assignee_id), else the staff of its compound's "
        "committee; level 2: the grid leaders of its building (grid_ids); level 3: the town's "
        "staff",
        "request_overdue",
        "high",
        6 * 60,
        {"request": "request_kind", "area": "str", "due": "datetime"},
    ),
    Rule(
        "distribution_planned",
        "logistics.distribution.planned",
        "A distribution of supplies was planned for a compound",
        "the building leaders of the compound",
        "distribution_planned",
        "normal",
        24 * 60,
        {"plan": "str", "count": "int"},
    ),
    Rule(
        "distribution_cancelled",
        "logistics.distribution.cancelled",
        "A distribution of supplies was cancelled for a compound",
        "the building leaders of the compound (as its planning's notice)",
        "distribution_cancelled",
        "high",
        24 * 60,
        {"plan": "str", "count": "int"},
    ),
    Rule(
        "transfer_overdue",
        "testing.transfer.overdue",
        "A case's transfer to isolation is overdue",
        "the town's staff",
        "transfer_overdue",
        "urgent",
        2 * 60,
        {"compound": "str", "due": "datetime"},
    ),
)

BY_KEY = {rule.key: rule for rule in RULES}
EVENT_TYPES = tuple(sorted({rule.event_type for rule in RULES}))
