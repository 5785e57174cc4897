"""Rules: events become messages. Each built-in rule (``catalogue.py``) says which event,
whom (``recipients.py``), which template, how urgent and for how long it is worth sending;
a town switches rules off or changes their template, priority or validity. Operators
preview a rule on an event before it fires; the ``rules`` consumer fires them.

A message's key is (event id, recipient, template): a redelivered event sends nothing twice."""

import dataclasses
import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from services.notify.messages.service import enqueue
from services.notify.models import CauseKind, Priority, RuleSetting
from services.notify.rules import recipients, schemas
from services.notify.rules.catalogue import BY_KEY, RULES, Rule
from services.notify.templates import service as templates
from services.notify.templates.render import LOCALES
from shared.authz import MANAGERS, UNSCOPED, Place, Role, policy
from shared.events import Envelope
from shared.ids import new_id
from shared.problems import Invalid, NotFound
from shared.service import Consumer
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)
# The town office decides what fires, and looks at what a rule would send.
CHANGE = policy("rules", "change", Role.town_operator, Role.service)
PREVIEW = policy("rules", "preview", *MANAGERS)


@dataclasses.dataclass(frozen=True)
class Effective:
    """A rule as a town runs it."""

    rule: Rule
    enabled: bool
    template_key: str
    priority: str
    validity_minutes: int
    changed_by: str | None = None
    changed_at: datetime | None = None


def _effective(rule: Rule, setting: RuleSetting | None) -> Effective:
    if setting is None:
        return Effective(rule, True, rule.template_key, rule.priority, rule.validity_minutes)
    return Effective(
        rule,
        setting.enabled,
        setting.template_key or rule.template_key,
        setting.priority or rule.priority,
        setting.validity_minutes or rule.validity_minutes,
        setting.updated_by,
        setting.updated_at,
    )


def _priority(effective: Effective, payload: dict[str, Any]) -> Priority:
    """An event about an urgent matter (a help request of priority ``urgent``) makes urgent
    alerts whatever the rule's usual priority: they must pass quiet hours and caps."""
    if payload.get("priority") == Priority.urgent:
        return Priority.urgent
    return Priority(effective.priority)


async def _settings(uow: UnitOfWork, town_id: uuid.UUID) -> dict[str, RuleSetting]:
    rows = await uow.session.scalars(select(RuleSetting).where(RuleSetting.town_id == town_id))
    return {row.rule: row for row in rows}


def _rule(key: str) -> Rule:
    if key not in BY_KEY:
        raise NotFound(f"no rule {key!r}")
    return BY_KEY[key]


def out(effective: Effective) -> schemas.RuleOut:
    rule = effective.rule
    return schemas.RuleOut(
        key=rule.key,
        event_type=rule.event_type,
        description=rule.description,
        recipients=rule.recipients,
        template_key=effective.template_key,
        priority=effective.priority,
        validity_minutes=effective.validity_minutes,
        optional=rule.optional,
        enabled=effective.enabled,
        provides=rule.provides,
        changed_by=effective.changed_by,
        changed_at=effective.changed_at,
    )


async def listed(uow: UnitOfWork, *, town_id: uuid.UUID) -> list[Effective]:
    templates.require_town(uow, town_id)
    settings = await _settings(uow, town_id)
    return [_effective(rule, settings.get(rule.key)) for rule in RULES]


async def health_templates(
    uow: UnitOfWork, *, town_ids: Iterable[uuid.UUID]
) -> set[tuple[uuid.UUID, str]]:
    """The (town, template key) pairs whose messages are health data: each health rule's
    built-in template, and the one a town gave it instead. Read beyond the caller's scope
    (a town's settings are placed at the town, outside a leader's): it only decides what
    the presenter masks, and nothing of it is shown."""
    towns = set(town_ids)
    health = [rule for rule in RULES if rule.health]
    query = select(RuleSetting.town_id, RuleSetting.template_key).where(
        RuleSetting.town_id.in_(towns),
        RuleSetting.rule.in_([rule.key for rule in health]),
        RuleSetting.template_key.is_not(None),
    )
    chosen = (await uow.session.execute(query, execution_options=UNSCOPED)).all()
    built_in = {(town, rule.template_key) for town in towns for rule in health}
    return built_in | {(row.town_id, row.template_key) for row in chosen}


def _fills(rule: Rule, template: templates.TemplateVersion) -> None:
    """The rule must fill every variable of the template, with its type."""
    errors = [
        {
            "field": "template_key",
            "message": f"rule {rule.key} provides no {name} ({kind}) for template {template.key}",
        }
        for name, kind in template.variables.items()
        if rule.provides.get(name) != kind
    ]
    if errors:
        raise Invalid(errors[0]["message"], errors=errors)


async def change(uow: UnitOfWork, *, key: str, data: schemas.RuleChange) -> Effective:
    CHANGE.check_role(uow)
    rule = _rule(key)
    templates.require_town(uow, data.town_id)
    CHANGE.check(uow, Place(data.town_id), field="town_id")
    if data.template_key is not None:
        template = await templates.current(uow, town_id=data.town_id, key=data.template_key)
        _fills(rule, template)
    setting = (await _settings(uow, data.town_id)).get(key)
    if setting is None:
        setting = RuleSetting(town_id=data.town_id, rule=key, enabled=True)
        uow.session.add(setting)
    for name in ("enabled", "template_key", "priority", "validity_minutes"):
        if (value := getattr(data, name)) is not None:
            setattr(setting, name, value)
    setting.updated_by, setting.updated_at = uow.principal.username, datetime.now(UTC)
    await uow.session.flush()
    return _effective(rule, setting)


async def _target(
    uow: UnitOfWork, effective: Effective, payload: dict[str, Any]
) -> recipients.Target:
    resolve = recipients.RESOLVERS[effective.rule.key]
    return await resolve(uow, payload, effective.rule.optional)


async def preview(
    uow: UnitOfWork, *, key: str, data: schemas.RulePreview
) -> schemas.RulePreviewOut:
    """What the rule would send for such an event now: how many, in which languages, which
    texts and what they cost. Counts only the recipients the caller can see."""
    rule = _rule(key)
    templates.require_town(uow, data.town_id)
    PREVIEW.check(uow, Place(data.town_id), field="town_id")
    settings = await _settings(uow, data.town_id)
    effective = _effective(rule, settings.get(key))
    template = await templates.current(uow, town_id=data.town_id, key=effective.template_key)
    payload = {**data.payload, "town_id": str(data.town_id)}
    try:
        target = await _target(uow, effective, payload)
    except recipients.Unusable as exc:
        raise Invalid.on("payload", f"the rule cannot use this event: {exc}") from None
    values = target.values
    messages = templates.compose(
        template,
        values,
        target.reach.contacts,
        cause_kind=CauseKind.event,
        cause_id=new_id(),
        priority=_priority(effective, payload),
    )
    by_language = {locale: 0 for locale in LOCALES}
    for message in messages:
        by_language[message.language] += 1
    return schemas.RulePreviewOut(
        rule=key,
        enabled=effective.enabled,
        applies=recipients.applies(key, payload),
        template_key=template.key,
        template_version=template.version,
        priority=_priority(effective, payload),
        recipients=len(messages),
        by_language=by_language,
        skipped_no_phone=target.reach.no_phone,
        skipped_opted_out=target.reach.opted_out,
        texts=templates.lengths(template, values),
        segments=sum(m.segments for m in messages),
    )


async def fire(uow: UnitOfWork, envelope: Envelope) -> None:
    """Enqueue the messages of every enabled rule that takes this event (the consumer)."""
    payload = dict(envelope.payload)
    try:
        town_id = uuid.UUID(str(payload.get("town_id")))
    except ValueError:
        # Retrying would not give it a town: say so rather than park it after many tries.
        log.warning("event %s (%s) names no town: no rule fires", envelope.id, envelope.type)
        return
    settings = await _settings(uow, town_id)
    for rule in RULES:
        if rule.event_type != envelope.type or not recipients.applies(rule.key, payload):
            continue
        effective = _effective(rule, settings.get(rule.key))
        if effective.enabled:
            await _fire_one(uow, effective, envelope, payload)


async def _fire_one(
    uow: UnitOfWork, effective: Effective, envelope: Envelope, payload: dict[str, Any]
) -> None:
    try:
        target = await _target(uow, effective, payload)
    except recipients.Unusable as exc:
        # Retrying would not give the event what it lacks: say so and go on.
        log.warning("rule %s cannot use event %s: %s", effective.rule.key, envelope.id, exc)
        return
    town_id = uuid.UUID(str(payload["town_id"]))
    template = await templates.current(uow, town_id=town_id, key=effective.template_key)
    messages = templates.compose(
        template,
        target.values,
        target.reach.contacts,
        cause_kind=CauseKind.event,
        cause_id=envelope.id,
        priority=_priority(effective, payload),
        valid_until=envelope.occurred_at + timedelta(minutes=effective.validity_minutes),
    )
    new = await enqueue(uow, messages=messages)
    log.info(
        "rule %s on event %s: %d messages (%d new), %d without a mobile, %d opted out",
        effective.rule.key,
        envelope.id,
        len(messages),
        new,
        target.reach.no_phone,
        target.reach.opted_out,
    )


RULES_CONSUMER = Consumer(
    "rules",
    bindings=tuple(sorted({rule.event_type for rule in RULES})),
    handle=fire,
    concurrency=4,
)
