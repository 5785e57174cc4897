"""From a positive result to the sealed unit's SMS: the latency, end to end, on PostgreSQL.

Each run: a compound with a household of three in one unit, a round, their pool resulted
positive and their single-tube retests recorded; then the timed part: the lab file with one
positive retest is uploaded (``POST /v1/results/uploads``) → the case is confirmed → the
registry's zone policy seals the unit (``registry.zone.changed``) → notify's rule makes one
urgent message per resident → the dispatcher hands them to the fake SMS gateway (an HTTP
server on loopback). The latency is from the upload's start to the last of the unit's
residents handed to the gateway; p50 / p95 over the runs. Relays, consumers and the
dispatcher run as the workers do, over RabbitMQ (``--broker-url ''``: the in-process bus);
each relay and the dispatcher wake on commit, else poll.

    .venv/bin/python -m bench.notify_alert_latency [--runs 20] [--broker-url URL]
"""

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import time
import uuid
from datetime import date
from typing import Any, TextIO

import httpx

from bench import _rabbit
from bench.common import emit, goal_line, machine_line, pg_platform, unique_prefix
from bench.fake_sms import FakeSms
from cordon.app import create_app
from cordon.platform import Platform
from services.notify.settings import get_notify_settings
from services.registry.demo import bootstrap_town
from services.registry.documents import Sex, make_id_card

WINDOW = {"starts_at": "2022-04-02T05:00:00+08:00", "ends_at": "2022-04-02T11:00:00+08:00"}
COLLECTED = "2022-04-02T05:12:00+08:00"
RESULTED = "2022-04-02T14:00:00+08:00"
RETESTED = "2022-04-02T15:00:00+08:00"
# A result never predates its swab: the retests come back in the evening.
RETEST_RESULTED = "2022-04-02T20:00:00+08:00"
HOUSEHOLD = 3
# What the residents hear before the timed part: the round, then their pool's result.
EARLIER = ("round_scheduled", "pool_positive")
_documents = itertools.count(1)


def document() -> str:
    n = next(_documents)
    return make_id_card(
        region=f"{310100 + n // 500:06d}",
        birth=date(1980, 5, 17),
        sequence=n % 500,
        sex=Sex.FEMALE,
    )


async def post(client: httpx.AsyncClient, path: str, body: Any, headers: Any) -> Any:
    answer = await client.post(path, json=body, headers=headers)
    if answer.status_code not in (200, 201):
        raise SystemExit(f"{path}: {answer.status_code} {answer.text}")
    return answer.json()


async def upload(
    client: httpx.AsyncClient, headers: Any, rows: list[tuple[Any, str]], *, at: str = RESULTED
) -> Any:
    lines = ["tube_code,result,lab,resulted_at"]
    lines += [f"{code},{result},Riverside Lab,{at}" for code, result in rows]
    files = {"file": ("lab.csv", ("\n".join(lines) + "\n").encode(), "text/csv")}
    answer = await client.post("/v1/results/uploads", files=files, headers=headers)
    if answer.status_code != 201:
        raise SystemExit(f"upload: {answer.status_code} {answer.text}")
    return answer.json()


async def until(check: Any, *, what: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def household_in_unit(
    client: httpx.AsyncClient, headers: Any, *, town_id: uuid.UUID, run: int
) -> tuple[str, list[dict[str, Any]]]:
    """A compound with one household of three in its unit 1; (compound id, residents)."""
    committee = await post(
        client,
        "/v1/committees",
        {"town_id": str(town_id), "code": f"K{run}", "name": f"Committee {run}"},
        headers,
    )
    body = {
        "committee_id": committee["id"],
        "code": f"A{run}",
        "name": f"Compound A{run}",
        "kind": "public_housing",
        "gates": [{"name": "North gate"}],
    }
    compound = await post(client, "/v1/compounds", body, headers)
    body = {"compound_id": compound["id"], "code": "1", "units": ["1", "2"]}
    building = await post(client, "/v1/buildings", body, headers)
    units = await client.get(f"/v1/units?building_id={building['id']}", headers=headers)
    unit = sorted(units.json()["items"], key=lambda u: u["code"])[0]
    body = {"building_id": building["id"], "unit_id": unit["id"], "code": "101"}
    household = await post(client, "/v1/households", body, headers)
    people = []
    for k in range(HOUSEHOLD):
        body = {
            "household_id": household["id"],
            "name": f"王{k}",
            "document_number": document(),
            "phone": f"139{run:04d}{k:04d}",
            "tags": [],
        }
        people.append(await post(client, "/v1/residents?reveal=true", body, headers))
    return compound["id"], people


async def retests_recorded(
    client: httpx.AsyncClient,
    headers: Any,
    *,
    town_id: uuid.UUID,
    compound_id: str,
    run: int,
    people: list[dict[str, Any]],
) -> list[tuple[Any, str]]:
    """A round over the compound whose pool is positive and whose retests are recorded;
    the retests' lab rows (the first positive)."""
    body = {
        "town_id": str(town_id),
        "name": f"Round {run}",
        "scope": {"kind": "compounds", "ids": [compound_id]},
        "pool_size": 10,
        **WINDOW,
    }
    round_: dict[str, Any] = {}

    async def scheduled() -> bool:
        # The testing service schedules over its directory: wait for the residents there.
        answer = await client.post("/v1/rounds", json=body, headers=headers)
        if answer.status_code == 201 and answer.json()["expected"] == HOUSEHOLD:
            round_.update(answer.json())
            return True
        return False

    await until(scheduled, what="a round over the compound's residents")
    await post(client, f"/v1/rounds/{round_['id']}/open", {}, headers)
    ids = [p["id"] for p in people]
    pool = {"code": f"P{run:05d}", "member_ids": ids, "collector": "Nurse Li",
            "collected_at": COLLECTED}  # fmt: skip
    await post(client, f"/v1/rounds/{round_['id']}/tubes/batch", {"tubes": [pool]}, headers)
    await upload(client, headers, [(pool["code"], "positive")])
    singles = [
        {"code": f"R{run:05d}{k}", "member_ids": [i], "collector": "Nurse Li",
         "collected_at": RETESTED, "retest": True}
        for k, i in enumerate(ids)
    ]  # fmt: skip
    await post(client, f"/v1/rounds/{round_['id']}/tubes/batch", {"tubes": singles}, headers)
    return [(t["code"], "positive" if k == 0 else "negative") for k, t in enumerate(singles)]


def handed_at(fake: FakeSms, phones: list[str]) -> float | None:
    """When the last of these phones was handed to the gateway (None: not all yet)."""
    found = []
    for phone in phones:
        times = [at for number, at in fake.arrived.items() if number.endswith(phone)]
        if not times:
            return None
        found.append(min(times))
    return max(found)


async def one_run(
    client: httpx.AsyncClient, headers: Any, fake: FakeSms, *, town_id: uuid.UUID, run: int
) -> float:
    compound_id, people = await household_in_unit(client, headers, town_id=town_id, run=run)
    rows = await retests_recorded(
        client, headers, town_id=town_id, compound_id=compound_id, run=run, people=people
    )
    phones = [p["phone"][-11:] for p in people]

    async def told_of_retest() -> bool:
        counts = [sum(c for n, c in fake.handed.items() if n.endswith(p)) for p in phones]
        return min(counts) >= len(EARLIER)

    # The round's and the positive pool's messages reach the same phones first: wait for
    # them, then forget when they were first handed anything.
    await until(told_of_retest, what=f"run {run}: the positive pool's SMS", within=30)
    for number in [n for n in fake.arrived if n[-11:] in phones]:
        del fake.arrived[number]
    started = time.monotonic()
    await upload(client, headers, rows, at=RETEST_RESULTED)

    async def all_handed() -> bool:
        return handed_at(fake, phones) is not None

    await until(all_handed, what=f"run {run}: the sealed unit's SMS", within=30)
    last = handed_at(fake, phones)
    assert last is not None
    # What reached them is the sealing, once each.
    for person in people:
        query = f"/v1/messages?recipient_id={person['id']}&template_key=sealed"
        sealed = (await client.get(query, headers=headers)).json()["items"]
        if len(sealed) != 1 or sealed[0]["state"] not in ("sending", "sent", "delivered"):
            raise SystemExit(f"run {run}: {person['id']} got {sealed}")
    return last - started


async def run(*, runs: int, out: TextIO, broker_url: str | None) -> tuple[float, float]:
    prefix = unique_prefix("alert")
    bus = "RabbitMQ" if broker_url else "the in-process bus"
    emit(out, f"positive result upload → sealed unit's SMS on PostgreSQL and {bus}, {runs} runs")
    emit(out, machine_line())
    fake = await FakeSms.start()
    # The workers' dispatcher reads notify's settings from the environment, as deployed.
    setting = {
        "CORDON_NOTIFY_GATEWAY": "http",
        "CORDON_NOTIFY_GATEWAY_URL": fake.url,
        "CORDON_NOTIFY_QUIET_HOURS": "",
    }
    before = {name: os.environ.get(name) for name in setting}
    os.environ.update(setting)
    get_notify_settings.cache_clear()
    latencies = []
    try:
        services = ["registry", "testing", "notify"]
        async with pg_platform(services, prefix=prefix, broker_url=broker_url) as platform:
            latencies = await measure(platform, fake, runs=runs)
    finally:
        await fake.stop()
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_notify_settings.cache_clear()
    p50 = statistics.median(latencies) * 1000
    p95 = (
        statistics.quantiles(latencies, n=20, method="inclusive")[-1] * 1000
        if len(latencies) > 1
        else p50
    )
    emit(
        out,
        f"{'upload → case → sealed → rule → SMS handed (p50 / p95)':<58} {p50:7.0f} / {p95:.0f} ms",
        f"{'slowest run':<58} {max(latencies) * 1000:7.0f} ms",
        goal_line("p95 ≤ 1 s from a positive result upload", p95 <= 1000),
    )
    return p50, p95


async def measure(platform: Platform, fake: FakeSms, *, runs: int) -> list[float]:
    workers = asyncio.create_task(platform.run_workers())
    app = create_app(platform, with_workers=False, migrate=False)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://cordon.bench") as client:
            town_id = await bootstrap_town(
                platform.runtime("registry"),
                town_code="B1",
                town_name="Bench Street",
                username="operator",
                password="operator-pass-1",
            )
            token = await client.post(
                "/v1/auth/token", data={"username": "operator", "password": "operator-pass-1"}
            )
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            return [
                await one_run(client, headers, fake, town_id=town_id, run=n) for n in range(runs)
            ]
    finally:
        workers.cancel()
        await asyncio.gather(workers, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--broker-url", default=_rabbit.DEFAULT_URL, help="'' for the in-process bus"
    )
    args = parser.parse_args()
    asyncio.run(run(runs=args.runs, out=sys.stdout, broker_url=args.broker_url or None))


if __name__ == "__main__":
    main()
