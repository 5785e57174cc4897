"""RabbitMQ for benchmarks: remove what a benchmark's processes declared."""

import aio_pika

from cordon.platform import Platform
from shared.bus.lanes import urgent_lane
from shared.bus.rabbit import queue_objects

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
                for name in queue_objects(queue, delivery_limit=settings.delivery_limit):
                    await channel.queue_delete(name)
        for exchange in (settings.exchange, urgent_lane(settings.exchange)):
            await channel.exchange_delete(exchange)
    finally:
        await connection.close()
