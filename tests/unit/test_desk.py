"""The group-commit desk: items arriving together go as one group per key, each answered with
its own outcome; a failed write sends each item alone; a wrong count of outcomes answers
nobody with a guess."""

import asyncio

import pytest

from shared.desk import Desk


class Recorder:
    def __init__(self, *, fail: bool = False, short: bool = False) -> None:
        self.groups: list[tuple[str, list[int]]] = []
        self.fail, self.short = fail, short

    async def write(self, key: str, items: list[int]) -> list[int | None]:
        self.groups.append((key, list(items)))
        await asyncio.sleep(0.01)  # the database's time, while the next group gathers
        if self.fail:
            raise RuntimeError("the database went away")
        outcomes: list[int | None] = [n * 10 if n % 5 else None for n in items]
        return outcomes[1:] if self.short else outcomes


async def test_items_arriving_together_share_groups_and_each_gets_its_own_outcome() -> None:
    recorder = Recorder()
    desk: Desk[str, int, int] = Desk(recorder.write)
    answers = await asyncio.gather(*(desk.submit("a" if n < 20 else "b", n) for n in range(30)))
    # Its own outcome each (None for the ones the write sends alone: multiples of 5).
    assert answers == [n * 10 if n % 5 else None for n in range(30)]
    # Fewer groups than items, each of one key, each item in exactly one group.
    assert len(recorder.groups) < 30
    for key in ("a", "b"):
        items = [n for k, group in recorder.groups if k == key for n in group]
        assert sorted(items) == [n for n in range(30) if (n < 20) == (key == "a")]


async def test_a_failed_write_sends_every_item_of_its_group_alone() -> None:
    desk: Desk[str, int, int] = Desk(Recorder(fail=True).write)
    assert await asyncio.gather(*(desk.submit("a", n) for n in range(6))) == [None] * 6


async def test_outcomes_that_do_not_match_the_group_answer_an_error_not_a_guess() -> None:
    desk: Desk[str, int, int] = Desk(Recorder(short=True).write)
    with pytest.raises(RuntimeError, match="outcomes for"):
        await desk.submit("a", 1)
