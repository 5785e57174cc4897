"""Exactly-once external effects on both backends: a fake SMS provider (a plain in-process
object, not our database or broker) counts what it really sent."""

import asyncio
import itertools
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from cordon.platform import Platform
from shared.effects import EffectInProgress, EffectLedger, ProviderRefused, Result, Status


@dataclass
class FakeSmsProvider:
    """Sends at most what it is asked; its records answer lookups by idempotency key.
    ``lose_answer`` makes it act and then time out before answering, as a weak link does."""

    sent: list[str] = field(default_factory=list)
    records: dict[str, Result] = field(default_factory=dict)
    lose_answer: bool = False
    refuse: bool = False
    delay: float = 0.0
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    async def send(self, key: str, *, phone: str, text: str) -> Result:
        await asyncio.sleep(self.delay)
        if self.refuse:
            raise ProviderRefused("number is blacklisted")
        self.sent.append(key)
        self.records[key] = {"provider_id": f"sms-{next(self._ids)}", "phone": phone}
        if self.lose_answer:
            raise TimeoutError("no answer from the provider")
        return self.records[key]

    async def lookup(self, key: str) -> Result | None:
        return self.records.get(key)


def ledger(platform: Platform, *, lease_seconds: float = 60) -> EffectLedger:
    runtime = platform.runtime("testing")
    return EffectLedger(
        database=runtime.database, table=runtime.spec.kernel.effects, lease_seconds=lease_seconds
    )


def sms(provider: FakeSmsProvider, text: str = "Your unit is sealed") -> Any:
    async def call(key: str) -> Result:
        return await provider.send(key, phone="+8613800000001", text=text)

    return call


async def test_an_effect_is_performed_once_and_its_result_kept(platform: Platform) -> None:
    provider = FakeSmsProvider()
    key = f"sms:{uuid.uuid4()}"
    effects = platform.runtime("testing").effects

    first = await effects.perform(key, call=sms(provider), reconcile=provider.lookup)
    again = await effects.perform(key, call=sms(provider), reconcile=provider.lookup)

    assert first == again == provider.records[key]
    assert provider.sent == [key]
    assert await effects.status(key) == (Status.done, 1)


async def test_a_crash_between_call_and_confirm_is_reconciled_not_sent_twice(
    platform: Platform,
) -> None:
    provider = FakeSmsProvider()
    key = f"sms:{uuid.uuid4()}"
    # A worker claims, the provider sends, and the worker dies before confirming.
    crashed = ledger(platform, lease_seconds=0.3)
    assert (await crashed.claim(key)).reconcile is False
    await provider.send(key, phone="+8613800000001", text="Your unit is sealed")

    survivor = ledger(platform, lease_seconds=0.3)
    with pytest.raises(EffectInProgress):
        await survivor.perform(key, call=sms(provider), reconcile=provider.lookup)
    await asyncio.sleep(0.35)
    result = await survivor.perform(key, call=sms(provider), reconcile=provider.lookup)

    assert provider.sent == [key]
    assert result == provider.records[key]
    assert await survivor.status(key) == (Status.done, 2)


async def test_a_timed_out_call_is_reconciled_before_any_retry(platform: Platform) -> None:
    provider = FakeSmsProvider(lose_answer=True)
    key = f"sms:{uuid.uuid4()}"
    effects = platform.runtime("testing").effects

    with pytest.raises(TimeoutError):
        await effects.perform(key, call=sms(provider), reconcile=provider.lookup)
    assert await effects.status(key) == (Status.unknown, 1)
    provider.lose_answer = False
    result = await effects.perform(key, call=sms(provider), reconcile=provider.lookup)

    assert provider.sent == [key]
    assert result == provider.records[key]


async def test_a_call_lost_before_the_provider_got_it_is_made_again(platform: Platform) -> None:
    provider = FakeSmsProvider()
    key = f"sms:{uuid.uuid4()}"
    effects = platform.runtime("testing").effects

    async def cut(key: str) -> Result:
        raise ConnectionResetError("connection reset before the request left")

    with pytest.raises(ConnectionResetError):
        await effects.perform(key, call=cut, reconcile=provider.lookup)
    await effects.perform(key, call=sms(provider), reconcile=provider.lookup)

    assert provider.sent == [key]
    assert await effects.status(key) == (Status.done, 2)


async def test_a_refused_effect_may_be_tried_again(platform: Platform) -> None:
    provider = FakeSmsProvider(refuse=True)
    key = f"sms:{uuid.uuid4()}"
    effects = platform.runtime("testing").effects
    lookups: list[str] = []

    async def lookup(key: str) -> Result | None:
        lookups.append(key)
        return await provider.lookup(key)

    with pytest.raises(ProviderRefused):
        await effects.perform(key, call=sms(provider), reconcile=lookup)
    assert await effects.status(key) == (Status.failed, 1)
    provider.refuse = False
    await effects.perform(key, call=sms(provider), reconcile=lookup)

    assert provider.sent == [key]
    assert lookups == []


async def test_concurrent_claimers_make_one_call(platform: Platform) -> None:
    provider = FakeSmsProvider(delay=0.3)
    key = f"sms:{uuid.uuid4()}"
    workers = [ledger(platform) for _ in range(5)]

    outcomes = await asyncio.gather(
        *(w.perform(key, call=sms(provider), reconcile=provider.lookup) for w in workers),
        return_exceptions=True,
    )

    assert provider.sent == [key]
    done = [o for o in outcomes if isinstance(o, dict)]
    busy = [o for o in outcomes if isinstance(o, EffectInProgress)]
    assert (len(done), len(busy)) == (1, 4), outcomes
    assert done[0] == provider.records[key]
