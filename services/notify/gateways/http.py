"""A generic HTTP JSON SMS gateway.

``POST {url}/v1/messages`` with ``{"reference", "text", "numbers": [...]}`` and the
configured auth header answers ``{"accepted": [{"number", "id"}], "rejected": [{"number",
"reason"}]}``; ``GET {url}/v1/messages/{reference}`` answers the same for a reference it
received, 404 for one it never did. Delivery receipts come back on our webhook."""

from collections.abc import Sequence
from typing import Any

import httpx

from services.notify.gateways import (
    GatewayBusy,
    GatewayRejected,
    GatewayUncertain,
    Handed,
)

# Statuses after which the gateway certainly did nothing: throttled, or unavailable.
NOTHING_DONE = frozenset({429, 503})


class HttpGateway:
    def __init__(
        self,
        *,
        name: str,
        url: str,
        auth_header: str = "Authorization",
        auth_value: str = "",
        timeout_seconds: float = 10.0,
        max_numbers: int = 1000,
    ) -> None:
        self._name = name
        self._max_numbers = max_numbers
        headers = {auth_header: auth_value} if auth_value else {}
        self._client = httpx.AsyncClient(
            base_url=url.rstrip("/"), headers=headers, timeout=timeout_seconds
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def max_numbers(self) -> int:
        return self._max_numbers

    async def send(self, *, reference: str, text: str, numbers: Sequence[str]) -> Handed:
        body = {"reference": reference, "text": text, "numbers": list(numbers)}
        try:
            response = await self._client.post("/v1/messages", json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # The request never reached the gateway.
            raise GatewayBusy(f"{self._name} unreachable: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            # Sent, and the answer lost: it may have acted.
            raise GatewayUncertain(f"{self._name}: {type(exc).__name__} {exc}") from exc
        return _handed(self._name, response)

    async def status(self, *, reference: str) -> Handed | None:
        try:
            response = await self._client.get(f"/v1/messages/{reference}")
        except httpx.HTTPError as exc:
            raise GatewayUncertain(f"{self._name} status: {type(exc).__name__}") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise GatewayUncertain(f"{self._name} status answered {response.status_code}")
        return _parse(response.json())

    async def close(self) -> None:
        await self._client.aclose()


def _handed(name: str, response: httpx.Response) -> Handed:
    status = response.status_code
    if status == 200:
        return _parse(response.json())
    reason = f"{name} answered {status}: {_reason(response)}"
    if status in NOTHING_DONE:
        raise GatewayBusy(reason, retry_after=_retry_after(response))
    if 400 <= status < 500:
        raise GatewayRejected(reason)
    raise GatewayUncertain(reason)


def _parse(body: dict[str, Any]) -> Handed:
    return Handed(
        accepted={str(a["number"]): str(a["id"]) for a in body.get("accepted", [])},
        rejected={
            str(r["number"]): str(r.get("reason", "rejected")) for r in body.get("rejected", [])
        },
    )


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return (
        str(body.get("reason") or body.get("detail") or body)[:200]
        if isinstance(body, dict)
        else str(body)[:200]
    )


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None
