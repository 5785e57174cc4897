"""The benchmark code runs end to end on a small town against the real PostgreSQL, RabbitMQ
and Redis (no timing is judged here: figures belong to `make bench`)."""

import io
import re

import aio_pika
import pytest

from bench import bus, testing_coverage, testing_results
from tests.conftest import AMQP_URL, IN_CI, PG_URL, REDIS_URL, _unreachable


@pytest.fixture
def services_up() -> None:
    down = _unreachable()
    if down and not IN_CI:
        pytest.skip(f"real services unreachable here: {', '.join(down)}")


# The tube bench also runs with an in-process bus (`--broker-url ''`), for a machine whose
# broker is away: the API then runs embedded on the same PostgreSQL and Redis.
@pytest.mark.parametrize("broker_url", [AMQP_URL, ""], ids=["rabbitmq", "in-process-bus"])
async def test_the_coverage_and_tube_benchmark_runs_on_a_small_town(
    services_up: None, broker_url: str
) -> None:
    figures = await testing_coverage.run(
        url=PG_URL,
        broker_url=broker_url,
        redis_url=REDIS_URL,
        size=2_000,
        compound_size=500,
        tubes=50,
        repeats=2,
        concurrency=(2, 4),
        batch_size=25,
        seconds=2,
        report=False,
    )
    assert figures.residents == 2_000
    assert set(figures.coverage) >= {"compound by building", "town by compound", "town by grid"}
    assert figures.single is not None and figures.single.tubes == 50
    assert figures.batch is not None and figures.batch.tubes == 50
    # Warm-up, single tubes at each concurrency and batched tubes, ten residents each, all
    # recorded through the API under wrk's load, each level measured beside GET /healthz.
    assert [level.connections for level in figures.levels] == [2, 4]
    assert all(level.single.tubes == 50 for level in figures.levels)
    assert all(level.health.wrk.requests > 0 for level in figures.levels)
    assert figures.sampled_after == (5 + 50 + 50 + 50) * 10


async def test_the_results_benchmark_results_every_person_of_a_small_round(
    services_up: None,
) -> None:
    figures = await testing_results.run(url=PG_URL, tubes=300, report=False)
    assert (figures.people, figures.resulted) == (3_000, 3_000)
    assert figures.positive_pools == 1
    assert figures.person_results_per_s > 0 and figures.raw_copy_rows_per_s > 0


async def test_the_bus_benchmark_relays_and_applies_every_event_and_cleans_up(
    services_up: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORDON_BENCH_DATABASE_URL", PG_URL)
    monkeypatch.setenv("CORDON_BENCH_BROKER_URL", AMQP_URL)
    out = io.StringIO()
    rates = await bus.run(count=200, concurrency=4, out=out)
    printed = out.getvalue()

    assert [r.count for r in rates] == [200, 200, 200, 200, 200, 200, 200]
    assert re.search(r"relay published .* 200 events in", printed)
    assert re.search(r"consumer applied, 4 in flight .* 200 events in", printed)
    assert len(re.findall(r"ratio to raw", printed)) == 5
    prefix = re.search(r"schemas (bench_bus_\w+_)\*", printed)
    assert prefix is not None
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        with pytest.raises(aio_pika.exceptions.ChannelClosed):
            await channel.declare_queue(f"{prefix.group(1)}testing.bench4", passive=True)
    finally:
        await connection.close()
