import uuid
from datetime import date, datetime
from typing import ClassVar, Literal

from pydantic import BaseModel

from services.logistics.stock.quantities import Amount
from shared.privacy import PersonalPhone, PersonalRecord

Destination = Literal["issued", "in_stock", "lost_in_transit", "written_off", "found"]


class WentTo(BaseModel):
    """Where part of a donated batch went: issued to a plan or request (and the building),
    still in stock at a holder, lost in transit, or written off (lost, damaged, expired; net
    of what was found again at that store). `found`: more came to light at a store than
    was written off there (a count above the card), so the rows sum to the donated quantity
    plus what was found."""

    kind: Destination
    holder: str
    quantity: Amount
    reference_kind: str | None = None
    reference_id: uuid.UUID | None = None
    reference_label: str | None = None
    building_id: uuid.UUID | None = None
    building: str | None = None


class DonatedLine(BaseModel):
    batch_id: uuid.UUID
    item_id: uuid.UUID
    item: str
    unit: str
    batch: str
    expires_on: date | None
    quantity: Amount
    went_to: list[WentTo]


class DonationOut(PersonalRecord):
    """A donation as the register shows donors: what arrived from whom, and where it went.
    The donor's contact is masked like a phone number."""

    resource: ClassVar[str] = "donations"
    record_id: ClassVar[str] = "receipt_id"

    receipt_id: uuid.UUID
    holder_id: uuid.UUID
    holder: str
    donor: str
    donor_contact: PersonalPhone
    received_at: datetime
    note: str
    lines: list[DonatedLine]
