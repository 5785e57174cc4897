"""RabbitMQ for benchmarks: remove what a benchmark's processes declared."""

import aio_pika

from cordon.platform import Platform

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"


async def delete_declared(platform: Platform) -> None:
    """Delete the consumer queues (with their retry and parking queues) and the exchange of
    the platform's settings."""
    settings = platform.settings
    if not settings.broker_url:
        return
    connection = await aio_pika.connect(settings.broker_url)
    try:
        channel = await connection.channel()
        for runtime in platform.runtimes.values():
            for consumer in runtime.spec.consumers:
                queue = runtime.subscription(consumer).queue
                retries = [f"{queue}.retry.{n}" for n in range(1, settings.delivery_limit)]
                for name in [queue, f"{queue}.parking", *retries]:
                    await channel.queue_delete(name)
        await channel.exchange_delete(settings.exchange)
    finally:
        await connection.close()
