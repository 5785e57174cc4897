"""The log gateway: the embedded default. It sends nothing and writes each SMS it would send
to the log, so that `make run` shows what people would receive."""

import logging
from collections.abc import Sequence

from services.notify.gateways import Handed

log = logging.getLogger("cordon.sms")
# Numbers shown per logged SMS; the rest are counted.
SHOWN = 5


class LogGateway:
    def __init__(self, *, name: str = "log", max_numbers: int = 1000) -> None:
        self._name = name
        self._max_numbers = max_numbers
        # What was "sent" under each reference, for status (a restart forgets: nothing was
        # really sent, so a repeat after a crash only repeats a log line).
        self._done: dict[str, Handed] = {}

    @property
    def name(self) -> str:
        return self._name

    @property
    def max_numbers(self) -> int:
        return self._max_numbers

    async def send(self, *, reference: str, text: str, numbers: Sequence[str]) -> Handed:
        shown = ", ".join(numbers[:SHOWN])
        more = f" and {len(numbers) - SHOWN} more" if len(numbers) > SHOWN else ""
        log.info("SMS to %s%s: %s", shown, more, text)
        handed = Handed(accepted={n: f"{reference}/{i}" for i, n in enumerate(numbers)})
        self._done[reference] = handed
        return handed

    async def status(self, *, reference: str) -> Handed | None:
        return self._done.get(reference)

    async def close(self) -> None:
        return None
