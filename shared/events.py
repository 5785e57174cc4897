"""Events are the contract between services: one envelope, one Pydantic model per event type.

A contract subclasses :class:`Event` and declares ``type`` (``<service>.<entity>.<verb>``, also
the routing key) and ``version``; subclassing registers it in :data:`CATALOGUE`, from which
``docs/events.md`` is generated.

Producers are strict, consumers tolerant: building an event (or a record in it) with a field
its contract lacks raises, while reading one (:meth:`Envelope.event`) ignores fields this
consumer's contracts don't know yet, so a producer may add an optional field before every
consumer is upgraded.

Times travel in UTC: every time a contract carries is an :data:`Instant`, converted to UTC
when an event is built (a producer's ``+08:00`` leaves as ``Z``) and refused there without a
UTC offset (the producer must say which clock it means); a consumer reads a time without one
as UTC, the convention of every store here (``shared.db.UtcDateTime``), never as the local
time of the process that happens to read it. Code that reads a time from a payload field by
field reads it with :func:`read_instant`.

Every envelope the relay publishes carries ``position``: its place in the producer's stream
(the outbox sequence), which only grows, and grows in commit order for any one entity (a
change takes the entity's row lock before its events get their positions). Projections keep
the position of what they applied and drop anything older (see ``shared/directory``).
"""

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Required, TypedDict, Unpack

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    model_validator,
)

from shared.ids import new_id

# Validation context of a consumer reading an event: unknown fields are ignored.
TOLERANT = {"tolerant": True}


def _reading(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("tolerant"))


def _in_utc(value: datetime, info: ValidationInfo) -> datetime:
    if value.tzinfo is None:
        if not _reading(info):
            raise ValueError("a time in an event needs its UTC offset")
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # 0001-01-01 05:00+08:00 is in the year 0 in UTC: no time, and not a crash.
        raise ValueError("a time in an event must be in the years 1 to 9999 in UTC") from None


# Every time an event or its envelope carries: UTC, built or read (see the module's doc).
Instant = Annotated[datetime, AfterValidator(_in_utc)]
_INSTANT: TypeAdapter[datetime] = TypeAdapter(Instant)


def read_instant(value: Any) -> datetime:
    """A time read from a payload, in UTC (a naive one is UTC); a ValidationError if it is
    none."""
    return _INSTANT.validate_python(value, context=TOLERANT)


class Contract(BaseModel):
    """An event or a record carried in one: strict when built, tolerant when read with
    :data:`TOLERANT` (the context reaches nested records too)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _ignore_unknown_when_reading(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict) and _reading(info):
            known = cls.__pydantic_fields__
            if not data.keys() <= known.keys():
                return {key: value for key, value in data.items() if key in known}
        return data


class Event(Contract):
    type: ClassVar[str]
    version: ClassVar[int] = 1
    # Contracts that carry names, ID or phone numbers are flagged in the catalogue.
    personal_data: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        event_type = cls.__dict__.get("type")
        if isinstance(event_type, str):
            if event_type in CATALOGUE:
                raise TypeError(f"event type {event_type} is declared twice")
            CATALOGUE[event_type] = cls


CATALOGUE: dict[str, type[Event]] = {}


class Origin(TypedDict, total=False):
    """Where an event comes from, as its envelope tells."""

    producer: Required[str]
    correlation_id: Required[str]
    causation_id: uuid.UUID | None
    compound_id: uuid.UUID | None


class Envelope(BaseModel):
    """What travels on the bus. ``type`` is also the routing key."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID = Field(default_factory=new_id)
    type: str
    version: int
    occurred_at: Instant = Field(default_factory=lambda: datetime.now(UTC))
    producer: str
    correlation_id: str
    causation_id: uuid.UUID | None = None
    compound_id: uuid.UUID | None = Field(
        default=None, description="The compound the event concerns, when it concerns one."
    )
    position: int | None = Field(
        default=None,
        description="The event's place in its producer's stream, stamped by the relay.",
    )
    # The last field: json_of relies on it.
    payload: dict[str, Any]

    @classmethod
    def wrap(cls, event: Event, **origin: Unpack[Origin]) -> "Envelope":
        return cls(
            type=event.type, version=event.version, payload=event.model_dump(mode="json"), **origin
        )

    @classmethod
    def json_of(cls, event: Event, **origin: Unpack[Origin]) -> tuple[uuid.UUID, str]:
        """The id and JSON of the envelope :meth:`wrap` makes, serialised straight from the
        event rather than through a payload of Python objects (bulk events carry thousands
        of records, and that detour was most of their cost)."""
        head = cls(type=event.type, version=event.version, payload={}, **origin)
        # The position is the relay's to stamp (see stamp_position).
        text = head.model_dump_json(exclude={"position"})
        empty = "{}}"
        assert text.endswith(empty), "payload must stay the envelope's last field"
        return head.id, text[: -len(empty)] + event.model_dump_json() + "}"

    def event(self) -> Event:
        """The payload as its contract, ignoring fields the contract doesn't know (a newer
        producer's); an unknown type or a malformed payload raises."""
        contract = CATALOGUE.get(self.type)
        if contract is None:
            raise LookupError(f"no contract for event type {self.type}")
        return contract.model_validate(self.payload, context=TOLERANT)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, body: bytes | str) -> "Envelope":
        return cls.model_validate_json(body, context=TOLERANT)


def stamp_position(body: str, position: int) -> str:
    """The outbox JSON of an envelope (:meth:`Envelope.json_of`) with its stream position."""
    assert body.startswith("{")
    return f'{{"position":{position},' + body[1:]
