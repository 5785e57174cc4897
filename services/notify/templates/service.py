"""Templates: the built-in catalogue as every town's version 1, a town's edits as further
versions, typed variables checked before anything is sent, and what each text costs."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from services.notify.contacts.service import Contact
from services.notify.messages.service import NewMessage
from services.notify.models import CauseKind, Priority, RecipientKind, RuleSetting, Template
from services.notify.rules.catalogue import RULES
from services.notify.templates import catalogue, repository, schemas
from services.notify.templates.render import (
    DEFAULT_LOCALE,
    LOCALES,
    check_values,
    placeholders,
    render,
)
from services.notify.templates.segments import count_segments
from shared.authz import MANAGERS, Place, Role, policy
from shared.problems import Conflict, Invalid, NotFound
from shared.settings import get_settings
from shared.uow import UnitOfWork

# The town office words what the whole town receives.
EDIT = policy("templates", "edit", Role.town_operator, Role.service)
# Previews render with the town's templates: for those who word them.
PREVIEW = policy("templates", "preview", *MANAGERS)


@dataclass(frozen=True)
class TemplateVersion:
    key: str
    version: int
    description: str
    variables: dict[str, str]
    texts: dict[str, str]
    built_in: bool
    created_by: str | None = None
    created_at: datetime | None = None

    def text(self, locale: str) -> tuple[str, str]:
        """The locale's text, or the default locale's when it has none; and which it is."""
        if locale in self.texts:
            return locale, self.texts[locale]
        return DEFAULT_LOCALE, self.texts[DEFAULT_LOCALE]

    def render(self, locale: str, values: dict[str, Any]) -> tuple[str, str]:
        """(locale used, rendered text) for checked values."""
        used, text = self.text(locale)
        # Times read on the town office's clock, the one every service shows.
        zone = get_settings().zone
        return used, render(text, variables=self.variables, values=values, locale=used, zone=zone)


def signature() -> str:
    return get_settings().sms_signature


def _of_row(row: Template) -> TemplateVersion:
    return TemplateVersion(
        key=row.key,
        version=row.version,
        description=row.description,
        variables=dict(row.variables),
        texts=dict(row.texts),
        built_in=False,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def _built_in(key: str) -> TemplateVersion | None:
    found = catalogue.BY_KEY.get(key)
    if found is None:
        return None
    return TemplateVersion(
        key=found.key,
        version=1,
        description=found.description,
        variables=dict(found.variables),
        texts=dict(found.texts),
        built_in=True,
    )


def require_town(uow: UnitOfWork, town_id: uuid.UUID, *, field: str = "town_id") -> None:
    """A town the caller sees; 404 naming ``field`` otherwise."""
    if not uow.scope.allows(town_id=town_id):
        raise NotFound.on(field, f"no town {town_id} in your scope")


async def current(
    uow: UnitOfWork, *, town_id: uuid.UUID, key: str, field: str = "template_key"
) -> TemplateVersion:
    """The newest version of a template in the town; 404 naming ``field`` if there is none."""
    stored = await repository.latest_stored(uow, town_id=town_id, key=key)
    found = _of_row(stored) if stored is not None else _built_in(key)
    if found is None:
        raise NotFound.on(field, f"no template {key!r}")
    return found


async def version_of(
    uow: UnitOfWork, *, town_id: uuid.UUID, key: str, version: int
) -> TemplateVersion:
    """A given version (what a message or broadcast was rendered from)."""
    if version == 1 and (built := _built_in(key)) is not None:
        return built
    stored = await repository.stored_version(uow, town_id=town_id, key=key, version=version)
    if stored is None:
        raise NotFound.on("version", f"template {key!r} has no version {version}")
    return _of_row(stored)


async def listed(uow: UnitOfWork, *, town_id: uuid.UUID) -> list[TemplateVersion]:
    require_town(uow, town_id)
    stored = {
        row.key: _of_row(row) for row in await repository.latest_of_town(uow, town_id=town_id)
    }
    built = {key: t for key in catalogue.BY_KEY if (t := _built_in(key)) is not None}
    merged = {**built, **stored}
    return [merged[key] for key in sorted(merged)]


async def versions(uow: UnitOfWork, *, town_id: uuid.UUID, key: str) -> list[TemplateVersion]:
    require_town(uow, town_id)
    found = [_of_row(r) for r in await repository.stored_versions(uow, town_id=town_id, key=key)]
    built = _built_in(key)
    if built is not None:
        found.insert(0, built)
    if not found:
        raise NotFound(f"no template {key!r}")
    return found


def lengths(
    template: TemplateVersion, values: dict[str, Any] | None = None
) -> list[schemas.Length]:
    """Each locale's text (rendered when values are given) with what it costs."""
    out = []
    for locale in template.texts:
        text = template.render(locale, values)[1] if values is not None else template.texts[locale]
        cost = count_segments(text, signature=signature())
        out.append(
            schemas.Length(
                locale=locale,
                text=text,
                encoding=cost.encoding,
                units=cost.units,
                segments=cost.segments,
            )
        )
    return out


def check(
    template: TemplateVersion, values: dict[str, Any], *, field: str = "variables"
) -> dict[str, Any]:
    """The values typed as the template declares them; 422 naming each missing, unknown or
    mistyped variable."""
    typed, errors = check_values(template.variables, values, field=field)
    if errors:
        raise Invalid(errors[0]["message"], errors=errors)
    return typed


def _checked_texts(variables: dict[str, str], texts: dict[str, str]) -> None:
    errors = []
    if DEFAULT_LOCALE not in texts:
        errors.append({"field": "texts", "message": f"a template needs a {DEFAULT_LOCALE} text"})
    for locale, text in texts.items():
        if not text.strip():
            # The residents would receive the signature alone.
            errors.append({"field": f"texts.{locale}", "message": f"the {locale} text is blank"})
            continue
        try:
            used = placeholders(text)
        except ValueError as exc:
            errors.append({"field": f"texts.{locale}", "message": str(exc)})
            continue
        errors += [
            {"field": f"texts.{locale}", "message": f"{{{name}}} is not a declared variable"}
            for name in used
            if name not in variables
        ]
    errors += [
        {"field": f"variables.{name}", "message": f"{name!r} is not a variable name"}
        for name in variables
        if not name.isidentifier()
    ]
    if errors:
        raise Invalid(errors[0]["message"], errors=errors)


async def _rules_served(
    uow: UnitOfWork, *, town_id: uuid.UUID, key: str, variables: dict[str, str]
) -> None:
    """A new version must still be fillable by every rule of the town that uses the key:
    a variable no rule provides would fail at send time."""
    chosen = dict(
        (
            await uow.session.execute(
                select(RuleSetting.rule, RuleSetting.template_key).where(
                    RuleSetting.town_id == town_id
                )
            )
        ).all()
    )
    errors = []
    for rule in RULES:
        if (chosen.get(rule.key) or rule.template_key) != key:
            continue
        for name, kind in variables.items():
            if rule.provides.get(name) != kind:
                message = f"rule {rule.key} uses this template and provides no {name} ({kind})"
                errors.append({"field": f"variables.{name}", "message": message})
    if errors:
        raise Invalid(errors[0]["message"], errors=errors)


def _row(
    uow: UnitOfWork,
    *,
    town_id: uuid.UUID,
    key: str,
    version: int,
    description: str,
    variables: dict[str, str],
    texts: dict[str, str],
) -> Template:
    return Template(
        town_id=town_id,
        key=key,
        version=version,
        description=description,
        variables=variables,
        texts=texts,
        created_by=uow.principal.username,
        created_at=datetime.now(UTC),
    )


async def create(uow: UnitOfWork, *, data: schemas.TemplateCreate) -> TemplateVersion:
    EDIT.check_role(uow)
    require_town(uow, data.town_id)
    EDIT.check(uow, Place(data.town_id), field="town_id")
    if _built_in(data.key) is not None or await repository.latest_stored(
        uow, town_id=data.town_id, key=data.key
    ):
        raise Conflict.on("key", f"template {data.key!r} exists; add a version to change it")
    variables: dict[str, str] = {**data.variables}
    texts: dict[str, str] = {str(locale): text for locale, text in data.texts.items()}
    _checked_texts(variables, texts)
    row = _row(
        uow,
        town_id=data.town_id,
        key=data.key,
        version=1,
        description=data.description,
        variables=variables,
        texts=texts,
    )
    uow.session.add(row)
    await uow.session.flush()
    return _of_row(row)


async def edit(uow: UnitOfWork, *, key: str, data: schemas.TemplateEdit) -> TemplateVersion:
    """A new version of the template (the older ones stay, as messages name them)."""
    EDIT.check_role(uow)
    require_town(uow, data.town_id)
    EDIT.check(uow, Place(data.town_id), field="town_id")
    before = await current(uow, town_id=data.town_id, key=key, field="key")
    variables: dict[str, str] = {**data.variables}
    texts: dict[str, str] = {str(locale): text for locale, text in data.texts.items()}
    _checked_texts(variables, texts)
    await _rules_served(uow, town_id=data.town_id, key=key, variables=variables)
    row = _row(
        uow,
        town_id=data.town_id,
        key=key,
        version=before.version + 1,
        description=before.description if data.description is None else data.description,
        variables=variables,
        texts=texts,
    )
    uow.session.add(row)
    await uow.session.flush()
    return _of_row(row)


def out(template: TemplateVersion) -> schemas.TemplateOut:
    return schemas.TemplateOut(
        key=template.key,
        version=template.version,
        built_in=template.built_in,
        description=template.description,
        variables=template.variables,
        texts=template.texts,
        signature=signature(),
        lengths=lengths(template),
        created_by=template.created_by,
        created_at=template.created_at,
    )


async def preview(uow: UnitOfWork, *, key: str, data: schemas.Preview) -> schemas.PreviewOut:
    require_town(uow, data.town_id)
    PREVIEW.check(uow, Place(data.town_id), field="town_id")
    if data.version is None:
        template = await current(uow, town_id=data.town_id, key=key, field="key")
    else:
        template = await version_of(uow, town_id=data.town_id, key=key, version=data.version)
    values = check(template, dict(data.variables))
    return schemas.PreviewOut(
        key=template.key, version=template.version, texts=lengths(template, values)
    )


@dataclass(frozen=True)
class Rendered:
    locale: str
    text: str
    segments: int


def rendered_per_locale(template: TemplateVersion, values: dict[str, Any]) -> dict[str, Rendered]:
    """Each locale's text once (every recipient of a locale gets the same text)."""
    out = {}
    for locale in LOCALES:
        used, text = template.render(locale, values)
        out[locale] = Rendered(used, text, count_segments(text, signature=signature()).segments)
    return out


def compose(
    template: TemplateVersion,
    values: dict[str, Any],
    contacts: Sequence[Contact],
    *,
    cause_kind: CauseKind,
    cause_id: uuid.UUID,
    priority: Priority,
    broadcast_id: uuid.UUID | None = None,
    send_at: datetime | None = None,
    valid_until: datetime | None = None,
) -> list[NewMessage]:
    """One message per contact in their language (zh-CN where the template has no text in
    it), keyed by cause, recipient and template."""
    texts = rendered_per_locale(template, values)
    default = texts[DEFAULT_LOCALE]
    return [
        NewMessage(
            cause_kind=cause_kind,
            cause_id=cause_id,
            recipient_kind=RecipientKind(contact.kind),
            recipient_id=contact.id,
            phone=contact.phone,
            language=(chosen := texts.get(contact.language, default)).locale,
            template_key=template.key,
            template_version=template.version,
            text=chosen.text,
            segments=chosen.segments,
            priority=priority,
            broadcast_id=broadcast_id,
            send_at=send_at,
            valid_until=valid_until,
            town_id=contact.place.town_id,
            committee_id=contact.place.committee_id,
            compound_id=contact.place.compound_id,
            building_id=contact.place.building_id,
        )
        for contact in contacts
    ]
