"""The dispatcher as a worker task of every notify worker process (``cordon worker``, and the
embedded process), with the gateways its settings name."""

from services.notify.delivery.service import Dispatcher
from services.notify.gateways import Gateway
from services.notify.gateways.failover import Gateways
from services.notify.gateways.http import HttpGateway
from services.notify.gateways.log import LogGateway
from services.notify.settings import NotifySettings, get_notify_settings
from shared.service import ServiceRuntime


def gateway_of(
    kind: str, *, name: str, url: str, auth_header: str, auth_value: str, settings: NotifySettings
) -> Gateway:
    if kind == "http":
        return HttpGateway(
            name=name,
            url=url,
            auth_header=auth_header,
            auth_value=auth_value,
            timeout_seconds=settings.call_timeout_seconds,
            max_numbers=settings.batch_numbers,
        )
    return LogGateway(name=name, max_numbers=settings.batch_numbers)


def dispatcher_for(runtime: ServiceRuntime, settings: NotifySettings) -> Dispatcher:
    primary = gateway_of(
        settings.gateway,
        name=settings.gateway_name,
        url=settings.gateway_url,
        auth_header=settings.gateway_auth_header,
        auth_value=settings.gateway_auth_value,
        settings=settings,
    )
    fallback = None
    if settings.fallback_gateway:
        fallback = gateway_of(
            settings.fallback_gateway,
            name=settings.fallback_name,
            url=settings.fallback_url,
            auth_header=settings.fallback_auth_header,
            auth_value=settings.fallback_auth_value,
            settings=settings,
        )
    gateways = Gateways(
        kv=runtime.kv,
        primary=primary,
        fallback=fallback,
        window_seconds=settings.health_window_seconds,
        error_rate=settings.failover_error_rate,
        latency_ms=settings.failover_latency_ms,
        min_calls=settings.failover_min_calls,
        failback_seconds=settings.failback_seconds,
    )
    dispatcher = Dispatcher(runtime, settings=settings, gateways=gateways)
    gateways.on_switch(dispatcher.record_switch)
    return dispatcher


async def run_dispatcher(runtime: ServiceRuntime) -> None:
    dispatcher = dispatcher_for(runtime, get_notify_settings())
    try:
        await dispatcher.run()
    finally:
        await dispatcher.gateways.close()
