"""RabbitMQ for benchmarks: remove what a benchmark's processes declared."""

import aio_pika

from cordon.platform import Platform
from shared.bus.lanes import urgent_lane
from shared.bus.rabbit import queue_objects
from shared.service import topology

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"


async def delete_declared(platform: Platform) -> None:
    """Delete the deployment's consumer queues (with their back-off and parking queues), the
    exchange of the platform's settings and its unrouted queue."""
    settings = platform.settings
    if not settings.broker_url:
        return
    connection = await aio_pika.connect(settings.broker_url)
    try:
        channel = await connection.channel()
        for subscription in topology(platform.topology, settings=settings):
            for name in queue_objects(subscription.queue, delivery_limit=settings.delivery_limit):
                await channel.queue_delete(name)
        await channel.queue_delete(f"{settings.exchange}.unrouted")
        for exchange in (
            settings.exchange,
            urgent_lane(settings.exchange),
            f"{settings.exchange}.unrouted",
        ):
            await channel.exchange_delete(exchange)
    finally:
        await connection.close()
