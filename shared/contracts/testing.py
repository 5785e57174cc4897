"""Events the testing service publishes."""

import uuid
from datetime import date
from typing import Literal

from pydantic import Field

from shared.events import Contract, Event, Instant

RoundKind = Literal["pcr", "antigen"]
ScopeKindName = Literal["town", "compounds", "buildings", "units", "zone_level"]
CaseSource = Literal["single_tube", "retest", "antigen_confirmed"]


class RoundScope(Contract):
    """Who a round covers: the whole town, listed compounds, buildings or units, or every
    unit currently in a zone level (e.g. all sealed units, daily)."""

    kind: ScopeKindName
    ids: list[uuid.UUID] = Field(default_factory=list)
    zone_level: Literal["sealed", "controlled", "precaution"] | None = None


class RoundScheduled(Event):
    """A screening round was planned."""

    type = "testing.round.scheduled"
    round_id: uuid.UUID
    town_id: uuid.UUID
    name: str
    kind: RoundKind
    scope: RoundScope
    starts_at: Instant
    ends_at: Instant
    pool_size: int
    expected: int


class RoundOpened(Event):
    """Sampling of a round began."""

    type = "testing.round.opened"
    round_id: uuid.UUID
    town_id: uuid.UUID
    at: Instant


class RoundClosed(Event):
    """Sampling of a round ended; the counts are those at closing."""

    type = "testing.round.closed"
    round_id: uuid.UUID
    town_id: uuid.UUID
    at: Instant
    expected: int
    sampled: int
    missed: int


class PoolPositive(Event):
    """A pooled tube was positive: every member needs a single-tube retest, door to door."""

    type = "testing.pool.positive"
    round_id: uuid.UUID
    tube_id: uuid.UUID
    tube_code: str
    town_id: uuid.UUID
    compound_id: uuid.UUID
    member_ids: list[uuid.UUID]
    resulted_at: Instant


class ResultsRecorded(Event):
    """One batch of lab results was applied (one event per batch of an upload, never one per
    tube); counts only, the people concerned follow in their own events."""

    type = "testing.results.recorded"
    upload_id: uuid.UUID
    town_id: uuid.UUID
    batch: int
    negative: int
    positive: int
    invalid: int


class ContactRecord(Contract):
    resident_id: uuid.UUID | None
    kind: Literal["close", "secondary"]
    quarantine_until: date


class CaseConfirmed(Event):
    """A resident was confirmed positive (a positive single tube or retest); the registry
    seals the case's unit or building, others alert and trace."""

    type = "testing.case.confirmed"
    personal_data = True
    case_id: uuid.UUID
    resident_id: uuid.UUID
    household_id: uuid.UUID | None
    town_id: uuid.UUID
    compound_id: uuid.UUID
    building_id: uuid.UUID
    unit_id: uuid.UUID | None
    round_id: uuid.UUID | None
    tube_code: str | None
    source: CaseSource
    confirmed_at: Instant
    contacts: list[ContactRecord]


class TransferOverdue(Event):
    """A case was not transferred by its same-day target."""

    type = "testing.transfer.overdue"
    case_id: uuid.UUID
    resident_id: uuid.UUID
    town_id: uuid.UUID
    compound_id: uuid.UUID
    due_at: Instant
    status: Literal["pending", "scheduled"]


class CompoundEpidemicFreeEligible(Event):
    """A compound has gone the town's run of days without a positive; an operator may now
    declare it epidemic-free."""

    type = "testing.compound.epidemic_free_eligible"
    town_id: uuid.UUID
    compound_id: uuid.UUID
    days_without_positive: int
    last_positive_at: Instant | None
    at: Instant
