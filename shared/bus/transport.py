"""The transport port. Two adapters implement it: RabbitMQ (distributed mode) and a durable
in-process transport (embedded mode); one contract test suite runs against both.

Semantics both keep: topic routing (``*`` one word, ``#`` any words); a message whose
handler fails is retried with growing delays, up to ``delivery_limit`` attempts in all, then
parked where an operator can list it (read-only) and replay it (bounded, in batches); an event
that matches no binding is kept apart (``UNROUTED``), listed and replayed the same way;
publishing returns once every message is durably accepted (publisher confirms); a consumer
handles up to ``concurrency`` messages at once, those with the same order key one at a time
in queue order; urgent messages overtake the bulk messages already queued.
"""

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from functools import lru_cache

from shared.events import Envelope


@dataclass(frozen=True, slots=True)
class Outgoing:
    event_id: str
    routing_key: str
    body: bytes
    # Urgent messages travel in their own lane and overtake a bulk backlog (shared.bus.lanes).
    urgent: bool = False


OrderKey = Callable[[Envelope], str]


def by_compound(envelope: Envelope) -> str:
    """Every aggregate lives in one compound, so messages of one compound in order keep every
    aggregate's order; messages of no compound share one key."""
    return str(envelope.compound_id or "")


@dataclass(frozen=True)
class Subscription:
    queue: str
    bindings: tuple[str, ...]
    # Messages handled at once; those with the same order key one at a time, in queue order.
    concurrency: int = 1
    order_key: OrderKey = by_compound


@dataclass(frozen=True)
class ParkedMessage:
    queue: str
    event_id: str
    routing_key: str
    attempts: int
    error: str
    body: bytes


Handler = Callable[[Envelope], Awaitable[None]]

# The pseudo-queue of events no queue was bound for: ``parked(UNROUTED)`` lists them and
# ``replay(UNROUTED)`` routes them again (to the queues bound since, or back there).
UNROUTED = "unrouted"
# Messages a replay moves per round trip (and holds unacknowledged at once).
REPLAY_BATCH = 500


class PoisonMessage(Exception):
    """A message that can never succeed (unreadable): park it without retrying."""


class TransportError(Exception):
    """The broker is unreachable or refused the messages now; publishing again later may work."""


class Transport(ABC):
    delivery_limit: int

    @abstractmethod
    async def connect(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def publish(self, messages: Sequence[Outgoing]) -> None:
        """Return once every message is confirmed; raise (TransportError when the broker is
        unreachable or refuses) if any is not."""

    @abstractmethod
    async def declare(self, subscription: Subscription) -> None:
        """Create the queue, its retries and parking, and bind it (idempotent)."""

    @abstractmethod
    async def consume(self, subscription: Subscription, handler: Handler) -> None:
        """Deliver messages to ``handler`` until cancelled."""

    @abstractmethod
    async def parked(self, queue: str, *, limit: int = 100) -> list[ParkedMessage]:
        """The first ``limit`` parked messages, leaving them as they were (attempts included)."""

    @abstractmethod
    async def replay(
        self, queue: str, *, event_ids: Collection[str] | None = None, limit: int | None = None
    ) -> int:
        """Send parked messages (all, or those named; at most ``limit``) back to their queue,
        in batches of ``REPLAY_BATCH``; return how many. For ``UNROUTED``, the events go
        through the routing again, and those still matching no queue stay (are counted)."""

    @abstractmethod
    async def depth(self, queue: str) -> int:
        """Messages waiting in the queue (not counting parked ones); for ``UNROUTED``, the
        events kept there."""

    @abstractmethod
    async def ping(self) -> bool: ...


def parse(body: bytes) -> Envelope | PoisonMessage:
    """The envelope of a message body, or the poison that parks an unreadable one."""
    try:
        return Envelope.from_bytes(body)
    except ValueError as exc:
        return PoisonMessage(f"unreadable message: {exc}")


def order_key_of(subscription: "Subscription", parsed: Envelope | PoisonMessage) -> str:
    return subscription.order_key(parsed) if isinstance(parsed, Envelope) else ""


def backoff_seconds(attempt: int, base: float) -> float:
    """Delay before attempt ``attempt + 1``: base, 4×base, 16×base…"""
    return float(base * 4 ** (attempt - 1))


@lru_cache(maxsize=4096)
def topic_matches(pattern: str, routing_key: str) -> bool:
    return _match(tuple(pattern.split(".")), tuple(routing_key.split(".")))


def _match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _match(rest, words[1:])


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]
