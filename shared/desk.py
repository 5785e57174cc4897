"""Group commit, as a generic piece: items of work that arrive together are done together.

A burst of small creates pays per statement and per commit, not per item, when the items
arriving while a group is being written wait and go as the next group, in one transaction.
The first item after a quiet moment goes at once, as a group of one. Items share a group only
under the same key (whatever makes the same reads and the same policy check hold for each of
them: the caller's role and scope, a round). The caller's ``write`` answers each item of a
group with its own outcome, or ``None``: that item is done alone afterwards, on its request's
own unit of work. ``write`` raises only when it committed nothing: then every item of the
group is done alone (as when the writers are cancelled); once it has tried to commit, it
answers every item, a failure included. Nobody waits for ever.

Used by the testing service's single tubes and logistics' help requests: each says what
makes a group and how a group is written."""

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Waiting(Generic[T, R]):
    item: T
    answer: "asyncio.Future[R | None]"


def _answer(waiting: _Waiting[T, R], outcome: R | None) -> None:
    if not waiting.answer.done():
        waiting.answer.set_result(outcome)


class Desk(Generic[K, T, R]):
    """Items of one key arriving together, written together by ``write`` (one group, one
    transaction); each :meth:`submit` gets its own item's outcome, or ``None`` to do it
    alone."""

    # Groups of one key written at the same time: the database works on some while the
    # next one gathers.
    WRITERS = 4

    def __init__(
        self, write: Callable[[K, list[T]], Awaitable[list[R | None]]], *, what: str = "items"
    ) -> None:
        self._write = write
        self._what = what
        self._waiting: dict[K, list[_Waiting[T, R]]] = {}
        self._writers: Counter[K] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, key: K, item: T) -> R | None:
        """The item's outcome once its group is written (and committed), or ``None``."""
        waiting: _Waiting[T, R] = _Waiting(item, asyncio.get_running_loop().create_future())
        self._waiting.setdefault(key, []).append(waiting)
        if self._writers[key] < self.WRITERS:
            self._writers[key] += 1
            task = asyncio.create_task(self._write_groups(key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await waiting.answer

    async def _write_groups(self, key: K) -> None:
        try:
            while group := self._waiting.pop(key, None):
                outcomes: list[R | None] = [None] * len(group)
                try:
                    outcomes = await self._write(key, [w.item for w in group])
                except Exception:
                    log.warning(
                        "a group of %d %s failed; each goes alone",
                        len(group),
                        self._what,
                        exc_info=True,
                    )
                finally:
                    if len(outcomes) != len(group):
                        # A bug of ``write``: nothing can be answered, nor done again.
                        wrong = RuntimeError(f"{len(outcomes)} outcomes for {len(group)} items")
                        for waiting in group:
                            if not waiting.answer.done():
                                waiting.answer.set_exception(wrong)
                    for waiting, outcome in zip(group, outcomes, strict=False):
                        _answer(waiting, outcome)
        finally:
            self._writers[key] -= 1
            if not self._writers[key]:
                del self._writers[key]
                # Nobody waits for ever, even if the writers were cancelled.
                for waiting in self._waiting.pop(key, []):
                    _answer(waiting, None)
