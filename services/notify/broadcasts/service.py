"""Broadcasts: an operator's message to everyone in a scope.

Committee staff broadcast to their compounds; only town operators broadcast town-wide, and
a second operator must approve it (never its creator). Its messages are made set-based from
the directory: a compound's thousands in the request, a larger scope in batches by the
``broadcast-enqueue`` job (after approval), with the progress counted as it goes. A
cancellation (or a broadcast that supersedes it) stops what was not yet handed to a gateway."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from services.notify.broadcasts import repository, schemas
from services.notify.contacts import service as contacts
from services.notify.messages.service import broadcasts_progress, cancel_broadcast, enqueue
from services.notify.models import (
    Broadcast,
    BroadcastStatus,
    CauseKind,
    DirectoryPlace,
    DirectoryResident,
    Priority,
)
from services.notify.templates import service as templates
from services.notify.templates.render import LOCALES, jsonable
from shared.authz import MANAGERS, TOWN, Place, policy
from shared.directory.seen import above_scope, scope_ids_seen_each
from shared.phones import can_receive_sms
from shared.problems import Conflict, Forbidden, Invalid, NotFound
from shared.uow import UnitOfWork

SEND = policy("broadcasts", "send", *MANAGERS)
SEND_TOWN_WIDE = policy("broadcasts", "send town-wide", *TOWN)
APPROVE = policy("broadcasts", "approve", *TOWN)
CANCEL = policy("broadcasts", "cancel", *MANAGERS)
# Up to this many recipients are enqueued in the request (a compound of 7,500); beyond, the
# job enqueues batches of BATCH, so a town of 300,000 does not hold a request.
INLINE_LIMIT = 10_000
BATCH = 20_000
FINISHED = (BroadcastStatus.cancelled.value, BroadcastStatus.superseded.value)


async def _place(uow: UnitOfWork, *, scope: schemas.BroadcastScope, town_id: uuid.UUID) -> Place:
    """Where the broadcast goes: the place its scope's places (or residents) have in
    common; 404 naming the first one the caller cannot see."""
    if not uow.scope.allows(town_id=town_id):
        raise NotFound.on("town_id", f"no town {town_id} in your scope")
    kind = repository.PLACE_KIND.get(scope.kind)
    if scope.kind in ("zone_level", "tag"):
        kind = "compound" if scope.ids else None
    if scope.kind == "residents":
        found: dict[uuid.UUID, Any] = await repository.residents(
            uow, town_id=town_id, ids=scope.ids
        )
        what = "resident"
    elif kind is not None:
        found = await repository.places(uow, kind=kind, town_id=town_id, ids=scope.ids)
        what = kind
    else:
        return Place(town_id)
    errors = [
        {"field": f"scope.ids.{n}", "message": f"no {what} {i} in your scope"}
        for n, i in enumerate(scope.ids)
        if i not in found
    ]
    if errors:
        raise NotFound(errors[0]["message"], errors=errors)
    committees = await repository.committees_of(uow, {p.compound_id for p in found.values()})
    return Place.common(
        (
            Place(p.town_id, committees.get(p.compound_id), p.compound_id, p.building_id)
            for p in found.values()
        ),
        town_id=town_id,
    )


async def _named_phones(uow: UnitOfWork, data: schemas.BroadcastCreate) -> None:
    """Residents named one by one must be reachable: a phone that cannot receive an SMS is
    the caller's to fix, not a silent skip."""
    if data.scope.kind != "residents":
        return
    found = await repository.residents(uow, town_id=data.town_id, ids=data.scope.ids)
    errors = [
        {"field": f"scope.ids.{n}", "message": f"resident {i} has no phone that can receive SMS"}
        for n, i in enumerate(data.scope.ids)
        if not can_receive_sms(found[i].phone)
    ]
    if errors:
        raise Invalid(errors[0]["message"], errors=errors)


async def _checked(
    uow: UnitOfWork, data: schemas.BroadcastCreate
) -> tuple[Place, templates.TemplateVersion, dict[str, Any]]:
    """Everything a broadcast is refused for, before anything is written."""
    SEND.check_role(uow)
    place = await _place(uow, scope=data.scope, town_id=data.town_id)
    if data.scope.town_wide:
        SEND_TOWN_WIDE.check(uow, place, field="scope")
    else:
        SEND.check(uow, place, field="scope")
    if data.valid_until <= datetime.now(UTC):
        raise Invalid.on("valid_until", "valid_until is in the past")
    template = await templates.current(uow, town_id=data.town_id, key=data.template_key)
    values = templates.check(template, dict(data.variables))
    await _named_phones(uow, data)
    return place, template, values


async def preview(uow: UnitOfWork, *, data: schemas.BroadcastCreate) -> schemas.BroadcastPreview:
    """Whom it would reach, in which languages, with which texts at what cost; nothing is
    created."""
    _, template, values = await _checked(uow, data)
    where = repository.residents_in(data.scope, town_id=data.town_id)
    reach, _ = await contacts.residents(uow, where, optional=data.is_optional)
    texts = templates.rendered_per_locale(template, values)
    by_language = dict.fromkeys(LOCALES, 0)
    segments = 0
    for contact in reach.contacts:
        chosen = texts.get(contact.language, texts["zh-CN"])
        by_language[chosen.locale] += 1
        segments += chosen.segments
    return schemas.BroadcastPreview(
        town_wide=data.scope.town_wide,
        needs_approval=data.scope.town_wide,
        template_key=template.key,
        template_version=template.version,
        recipients=len(reach.contacts),
        by_language=by_language,
        skipped_no_phone=reach.no_phone,
        skipped_opted_out=reach.opted_out,
        texts=templates.lengths(template, values),
        segments=segments,
    )


# The field that narrows each kind of scope: the one to name when it selects nobody.
_SELECTING = {"tag": "scope.tag", "zone_level": "scope.zone_level", "town": "scope.kind"}


async def _recipients(uow: UnitOfWork, *, scope: schemas.BroadcastScope, town_id: uuid.UUID) -> int:
    """The residents the scope covers; none is refused, naming the field that selected
    nobody: a broadcast to nobody answered as a success tells the operator it went out."""
    count = await repository.count_residents(uow, repository.residents_in(scope, town_id=town_id))
    if count == 0:
        field = _SELECTING.get(scope.kind, "scope.ids")
        raise Invalid.on(
            field,
            f"{field} selects no resident (check it, or the place's residents and zones); "
            "nothing was created or sent",
        )
    return count


async def get(uow: UnitOfWork, broadcast_id: uuid.UUID) -> Broadcast:
    return await uow.get(Broadcast, broadcast_id, what="broadcast")


async def create(uow: UnitOfWork, *, data: schemas.BroadcastCreate) -> Broadcast:
    place, template, values = await _checked(uow, data)
    superseded = None
    if data.supersedes_id is not None:
        superseded = await uow.get(
            Broadcast, data.supersedes_id, what="broadcast", field="supersedes_id"
        )
        CANCEL.check(uow, Place.of(superseded), field="supersedes_id")
    recipients = await _recipients(uow, scope=data.scope, town_id=data.town_id)
    now = datetime.now(UTC)
    broadcast = Broadcast(
        **place.columns(),
        scope=data.scope.model_dump(mode="json"),
        town_wide=data.scope.town_wide,
        template_key=template.key,
        template_version=template.version,
        variables=jsonable(values),
        priority=data.priority,
        optional=data.is_optional,
        send_at=data.send_at or now,
        valid_until=data.valid_until,
        status=(
            BroadcastStatus.awaiting_approval.value
            if data.scope.town_wide
            else BroadcastStatus.enqueuing.value
        ),
        recipients=recipients,
        supersedes_id=data.supersedes_id,
        created_by=uow.principal.username,
        created_at=now,
    )
    uow.session.add(broadcast)
    await uow.session.flush()
    if superseded is not None:
        await _stop(uow, superseded, status=BroadcastStatus.superseded, field="supersedes_id")
    if broadcast.status == BroadcastStatus.enqueuing.value:
        await _enqueue_small(uow, broadcast)
    return broadcast


async def _enqueue_small(uow: UnitOfWork, broadcast: Broadcast) -> None:
    """A scope of up to INLINE_LIMIT recipients is enqueued now; a larger one is left to
    the job."""
    if broadcast.recipients <= INLINE_LIMIT:
        while await enqueue_batch(uow, broadcast, limit=INLINE_LIMIT + 1):
            pass
        await uow.session.refresh(broadcast)


async def enqueue_batch(uow: UnitOfWork, broadcast: Broadcast, *, limit: int) -> bool:
    """Enqueue the next batch of the broadcast's recipients; False once none is left (or
    another replica took this batch)."""
    template = await templates.version_of(
        uow,
        town_id=broadcast.town_id,
        key=broadcast.template_key,
        version=broadcast.template_version,
    )
    values = templates.check(template, dict(broadcast.variables))
    scope = schemas.BroadcastScope.model_validate(broadcast.scope)
    where = repository.residents_in(scope, town_id=broadcast.town_id)
    after = broadcast.cursor
    reach, last = await contacts.residents(
        uow, where, optional=broadcast.optional, after=after, limit=limit
    )
    messages = templates.compose(
        template,
        values,
        reach.contacts,
        cause_kind=CauseKind.broadcast,
        cause_id=broadcast.id,
        broadcast_id=broadcast.id,
        priority=Priority(broadcast.priority),
        send_at=broadcast.send_at,
        valid_until=broadcast.valid_until,
    )
    done = last is None or len(reach.contacts) + reach.no_phone + reach.opted_out < limit
    claimed = await repository.advance(
        uow,
        broadcast.id,
        after=after,
        to=last or after,
        enqueued=len(messages),
        no_phone=reach.no_phone,
        opted_out=reach.opted_out,
        done=done,
    )
    if not claimed:
        return False
    await enqueue(uow, messages=messages)
    broadcast.cursor = last or after
    return not done


async def approve(uow: UnitOfWork, *, broadcast_id: uuid.UUID) -> Broadcast:
    """A second town operator lets a town-wide broadcast go."""
    broadcast = await get(uow, broadcast_id)
    APPROVE.check(uow, Place.of(broadcast))
    if broadcast.status != BroadcastStatus.awaiting_approval.value:
        raise Conflict(f"broadcast is {broadcast.status}, not awaiting approval")
    if broadcast.created_by == uow.principal.username:
        raise Forbidden("a second town operator must approve a broadcast, not its creator")
    broadcast.status = BroadcastStatus.enqueuing.value
    broadcast.approved_by, broadcast.approved_at = uow.principal.username, datetime.now(UTC)
    await uow.session.flush()
    await _enqueue_small(uow, broadcast)
    return broadcast


async def _stop(
    uow: UnitOfWork, broadcast: Broadcast, *, status: BroadcastStatus, field: str | None = None
) -> int:
    if broadcast.status in FINISHED:
        message = f"broadcast {broadcast.id} is {broadcast.status} already"
        raise Conflict(message) if field is None else Conflict.on(field, message)
    # The status first: it takes the row's lock, so an enqueue batch in flight commits
    # before the messages are cancelled (and sees the status, and stops, after).
    broadcast.status = status.value
    broadcast.cancelled_by, broadcast.cancelled_at = uow.principal.username, datetime.now(UTC)
    await uow.session.flush()
    return await cancel_broadcast(uow, broadcast_id=broadcast.id)


async def cancel(uow: UnitOfWork, *, broadcast_id: uuid.UUID) -> Broadcast:
    broadcast = await get(uow, broadcast_id)
    CANCEL.check(uow, Place.of(broadcast))
    await _stop(uow, broadcast, status=BroadcastStatus.cancelled)
    return broadcast


async def _progress(
    uow: UnitOfWork, broadcast: Broadcast, states: dict[str, int]
) -> schemas.Progress:
    """Its progress as the caller may read it: ``states``, its messages in their scope by
    state; of one placed above their scope (the town office's over two committees), their
    residents it covers and skips, counted now (its own counts are the whole town's)."""
    if not above_scope(uow, broadcast):
        return schemas.Progress(
            recipients=broadcast.recipients,
            enqueued=broadcast.enqueued,
            skipped_no_phone=broadcast.skipped_no_phone,
            skipped_opted_out=broadcast.skipped_opted_out,
            states=states,
        )
    scope = schemas.BroadcastScope.model_validate(broadcast.scope)
    where = repository.residents_in(scope, town_id=broadcast.town_id)
    reach, _ = await contacts.residents(uow, where, optional=broadcast.optional)
    # Nobody is skipped before its enqueueing begins (awaiting approval), as in the whole.
    begun = broadcast.cursor is not None or broadcast.status == BroadcastStatus.enqueued.value
    return schemas.Progress(
        recipients=len(reach.contacts) + reach.no_phone + reach.opted_out,
        enqueued=sum(states.values()),
        skipped_no_phone=reach.no_phone if begun else 0,
        skipped_opted_out=reach.opted_out if begun else 0,
        states=states,
    )


async def _scopes(uow: UnitOfWork, broadcasts: Sequence[Broadcast]) -> list[schemas.BroadcastScope]:
    """Their scopes, naming only the places (or residents) the caller sees: one read for
    the places of the page, one for its residents."""
    scopes = [schemas.BroadcastScope.model_validate(b.scope) for b in broadcasts]
    seen: dict[int, list[uuid.UUID]] = {}
    for rows, of_residents in ((DirectoryResident, True), (DirectoryPlace, False)):
        at = [n for n, s in enumerate(scopes) if (s.kind == "residents") == of_residents]
        named = [(broadcasts[n], scopes[n].ids) for n in at]
        seen.update(zip(at, await scope_ids_seen_each(uow, rows=rows, named=named), strict=True))
    return [scope.model_copy(update={"ids": seen[n]}) for n, scope in enumerate(scopes)]


async def out(uow: UnitOfWork, broadcast: Broadcast) -> schemas.BroadcastOut:
    """A broadcast as the caller may read it: one placed above their scope shows only their
    part of its scope and progress."""
    [shown] = await out_all(uow, [broadcast])
    return shown


async def out_all(uow: UnitOfWork, broadcasts: Sequence[Broadcast]) -> list[schemas.BroadcastOut]:
    """:func:`out` for a page of broadcasts: their scopes and message states read at once."""
    scopes = await _scopes(uow, broadcasts)
    states = await broadcasts_progress(uow, broadcast_ids=[b.id for b in broadcasts])
    return [
        schemas.BroadcastOut(
            id=broadcast.id,
            town_id=broadcast.town_id,
            committee_id=broadcast.committee_id,
            compound_id=broadcast.compound_id,
            scope=scope,
            town_wide=broadcast.town_wide,
            template_key=broadcast.template_key,
            template_version=broadcast.template_version,
            variables=broadcast.variables,
            priority=broadcast.priority,
            optional=broadcast.optional,
            send_at=broadcast.send_at,
            valid_until=broadcast.valid_until,
            status=broadcast.status,
            supersedes_id=broadcast.supersedes_id,
            created_by=broadcast.created_by,
            created_at=broadcast.created_at,
            approved_by=broadcast.approved_by,
            approved_at=broadcast.approved_at,
            cancelled_by=broadcast.cancelled_by,
            cancelled_at=broadcast.cancelled_at,
            progress=await _progress(uow, broadcast, states[broadcast.id]),
        )
        for broadcast, scope in zip(broadcasts, scopes, strict=True)
    ]


async def enqueue_due(uow: UnitOfWork, now: datetime) -> None:
    """The ``broadcast-enqueue`` job: one batch of each broadcast being enqueued."""
    for broadcast in await repository.enqueuing(uow, limit=5):
        await enqueue_batch(uow, broadcast, limit=BATCH)
