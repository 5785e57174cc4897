"""SMS gateways behind one interface: hand one text to up to 1,000 numbers under a
reference (our idempotency key), and say later what was done under a reference.

A gateway's answer is one of: :class:`Handed` (per number, accepted with the provider's id or
rejected with its reason), :class:`GatewayBusy` (it certainly did nothing: 429, 503, no
connection; try again later), :class:`GatewayRejected` (a final error for the whole call),
or :class:`GatewayUncertain` (it may have acted: a timeout after sending, another 5xx) — the
dispatcher then asks :meth:`Gateway.status` before anything is sent again."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Handed:
    accepted: dict[str, str] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)

    def as_result(self) -> dict[str, Any]:
        """For the effects ledger (JSON)."""
        return {"accepted": self.accepted, "rejected": self.rejected}

    @classmethod
    def of_result(cls, result: dict[str, Any]) -> "Handed":
        return cls(
            accepted=dict(result.get("accepted", {})), rejected=dict(result.get("rejected", {}))
        )


class GatewayError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GatewayBusy(GatewayError):
    """Nothing was done; the same call may be made again after ``retry_after`` seconds."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class GatewayRejected(GatewayError):
    """A final refusal of the whole call (a 4xx other than 429): nothing will be sent."""


class GatewayUncertain(GatewayError):
    """The gateway may have acted: reconcile with :meth:`Gateway.status` before any retry."""


class Gateway(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def max_numbers(self) -> int: ...

    async def send(self, *, reference: str, text: str, numbers: Sequence[str]) -> Handed: ...

    async def status(self, *, reference: str) -> Handed | None:
        """What was done under ``reference``; None if the gateway never received it."""
        ...

    async def close(self) -> None: ...
