"""What both transports share to consume fast without losing order or urgency.

- **Lanes.** Every consumer queue ``Q`` has an urgent lane ``Q.urgent`` beside it. Urgent
  messages (a sealing, a positive result) are published to it; a consumer takes from the
  urgent lane whenever a slot frees, so an urgent message overtakes a bulk backlog already
  queued. Two queues rather than a priority queue: RabbitMQ's quorum queues (3.10) have no
  priorities, and a classic priority queue would lose the delivery limit and the
  at-least-once dead-lettering the bus relies on.
- **Keyed concurrency.** :class:`KeyedDispatcher` runs up to ``concurrency`` deliveries at
  once, while deliveries with the same order key (the compound, by default) run one after
  another in the order they were taken from the queue.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

URGENT_SUFFIX = ".urgent"


def urgent_lane(queue: str) -> str:
    return f"{queue}{URGENT_SUFFIX}"


def lanes_of(queue: str) -> tuple[str, str]:
    """The bulk and urgent lanes of a consumer queue."""
    return queue, urgent_lane(queue)


def queue_of_lane(lane: str) -> str:
    """The consumer queue a lane belongs to."""
    return lane.removesuffix(URGENT_SUFFIX)


class KeyedDispatcher:
    """Deliveries in flight at once, up to ``concurrency``; one key's deliveries in order.

    The consumer first waits for a free slot (:meth:`slot`), then takes the next message —
    urgent lane first — and starts it (:meth:`start`). Taking only once a slot is free is
    what lets an urgent message that arrives meanwhile go next.
    """

    def __init__(self, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._held = 0
        # The last delivery started for each key: the next one of that key waits for it.
        self._tails: dict[str, asyncio.Future[None]] = {}
        self._running: set[asyncio.Task[None]] = set()

    async def slot(self) -> None:
        await self._slots.acquire()
        self._held += 1

    def release(self) -> None:
        """Give back a slot taken with :meth:`slot` that found nothing to start."""
        self._held -= 1
        self._slots.release()

    @property
    def spare(self) -> int:
        """Slots free now, beyond those held."""
        return self._concurrency - self._held

    def start(self, key: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` after the key's previous delivery; a slot must be held."""
        previous = self._tails.get(key)
        finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tails[key] = finished
        task = asyncio.create_task(self._run(key, previous, finished, work))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(
        self,
        key: str,
        previous: asyncio.Future[None] | None,
        finished: asyncio.Future[None],
        work: Callable[[], Awaitable[None]],
    ) -> None:
        try:
            if previous is not None:
                await asyncio.shield(previous)
            await work()
        except Exception:
            # A delivery settles its own message; one that could not (its database gone)
            # leaves it unsettled, to come again. Say so instead of failing unseen.
            log.exception("a delivery failed before settling its message")
        finally:
            finished.set_result(None)
            if self._tails.get(key) is finished:
                del self._tails[key]
            self.release()

    @property
    def in_flight(self) -> int:
        return len(self._running)

    async def close(self) -> None:
        """Cancel what is in flight: unsettled messages come again from the queue."""
        for task in self._running:
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
