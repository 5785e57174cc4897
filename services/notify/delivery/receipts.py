"""Delivery receipts from gateways: signed with HMAC-SHA256 over the raw body, applied so
that a duplicate or an out-of-order receipt changes nothing (a final state is never left)."""

import hashlib
import hmac
import uuid
from collections import defaultdict
from datetime import datetime

from services.notify.delivery import repository
from services.notify.delivery.schemas import ReceiptIn
from services.notify.delivery.service import batch_of, emit_failed, outcome_of
from services.notify.models import MessageState
from shared.contracts.notify import MessageOutcome, MessagesDelivered
from shared.uow import UnitOfWork

SIGNATURE_HEADER = "X-Signature"


def sign(body: bytes, *, secret: str) -> str:
    """The header value a gateway sends with ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed(body: bytes, signature: str | None, *, secret: str) -> bool:
    if not secret or not signature:
        return False
    return hmac.compare_digest(sign(body, secret=secret), signature.strip())


async def apply_receipts(uow: UnitOfWork, *, receipts: list[ReceiptIn]) -> int:
    """Apply the receipts; return how many changed a message. One bulk event per town and
    outcome."""
    delivered: dict[uuid.UUID, list[MessageOutcome]] = defaultdict(list)
    failed_rows = []
    reasons: dict[uuid.UUID, str] = {}
    latest: datetime | None = None
    for receipt in receipts:
        batch_id = batch_of(receipt.reference)
        if batch_id is None:
            continue
        state = MessageState.delivered if receipt.status == "delivered" else MessageState.failed
        error = receipt.error or ("undelivered" if state is MessageState.failed else None)
        row = await repository.settle_receipt(
            uow, batch_id=batch_id, phone=receipt.number, state=state, at=receipt.at, error=error
        )
        if row is None:
            continue
        latest = receipt.at if latest is None else max(latest, receipt.at)
        if state is MessageState.delivered:
            delivered[row.town_id].append(outcome_of(row, at=receipt.at))
        else:
            failed_rows.append(row)
            reasons[row.id] = error or "undelivered"
    for town_id, outcomes in delivered.items():
        uow.emit(MessagesDelivered(town_id=town_id, messages=outcomes))
    if failed_rows and latest is not None:
        emit_failed(uow, failed_rows, reasons=reasons, at=latest)
    return sum(len(o) for o in delivered.values()) + len(failed_rows)
