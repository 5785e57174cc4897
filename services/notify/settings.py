"""The notify service's settings, read from the environment (prefix ``CORDON_NOTIFY_``), in
the same way as the kernel's :mod:`shared.settings`."""

import uuid
from datetime import time
from functools import lru_cache

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

GATEWAY_KINDS = ("log", "http")


@lru_cache(maxsize=64)
def parse_window(text: str) -> tuple[time, time] | None:
    """``"22:00-07:00"`` as (start, end) local times; ``""`` for no quiet hours."""
    if not text.strip():
        return None
    start, _, end = text.partition("-")
    return time.fromisoformat(start.strip()), time.fromisoformat(end.strip())


class NotifySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CORDON_NOTIFY_", env_file=".env", extra="ignore")

    # The gateway messages go to: "log" prints them (the embedded default), "http" calls a
    # generic HTTP JSON SMS gateway at gateway_url.
    gateway: str = "log"
    gateway_name: str = "primary"
    gateway_url: str = ""
    gateway_auth_header: str = "Authorization"
    gateway_auth_value: str = ""
    # A second gateway taken when the first's health crosses the thresholds below; "" none.
    fallback_gateway: str = ""
    fallback_name: str = "fallback"
    fallback_url: str = ""
    fallback_auth_header: str = "Authorization"
    fallback_auth_value: str = ""
    # Numbers in one gateway call with the same text (providers take up to 1,000).
    batch_numbers: int = Field(default=1000, ge=1, le=1000)
    # Each gateway's rate in SMS segments per second, shared by every worker replica.
    segments_per_second: float = Field(default=500.0, gt=0)
    burst_segments: float = Field(default=2000.0, ge=1)
    # Non-urgent messages per phone and template a day (providers refuse above ~50).
    daily_cap: int = Field(default=50, ge=1)
    # Quiet hours on the town office's clock (the kernel's Settings.time_zone, one for every
    # service); per-town overrides by town id ("" for none).
    quiet_hours: str = "22:00-07:00"
    quiet_hours_by_town: dict[uuid.UUID, str] = {}
    # Messages one dispatcher claims at once: small enough that an urgent message enqueued
    # behind a broadcast waits for one claim at most.
    claim_size: int = Field(default=2000, ge=1)
    # Gateway calls at once per claim; and claims whose batches are handed over at once (the
    # next claim is made while the last one's calls are under way).
    parallel_calls: int = Field(default=4, ge=1)
    claims_in_flight: int = Field(default=2, ge=1)
    # A claim (and its ledger entry) older than this was abandoned by a crashed worker.
    lease_seconds: float = Field(default=30.0, gt=0)
    call_timeout_seconds: float = Field(default=10.0, gt=0)
    retry_base_seconds: float = Field(default=2.0, gt=0)
    retry_cap_seconds: float = Field(default=300.0, gt=0)
    # Tries before a transiently failing message is given up as failed.
    max_attempts: int = Field(default=12, ge=1)
    # An idle dispatcher looks for due messages this often (an enqueue wakes it at once).
    poll_seconds: float = Field(default=1.0, gt=0)
    # Failover: over this window, an error rate or a mean latency above the threshold (with
    # at least min_calls calls) moves traffic to the fallback; after failback_seconds the
    # primary is tried again.
    health_window_seconds: float = Field(default=30.0, gt=0)
    failover_error_rate: float = Field(default=0.5, gt=0, le=1)
    failover_latency_ms: float = Field(default=5000.0, gt=0)
    failover_min_calls: int = Field(default=4, ge=1)
    failback_seconds: float = Field(default=120.0, gt=0)
    # The HMAC-SHA256 key gateways sign delivery receipts with; empty refuses every receipt.
    receipt_secret: str = ""

    @field_validator("gateway", "fallback_gateway")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value and value not in GATEWAY_KINDS:
            raise ValueError(f"a gateway is one of {', '.join(GATEWAY_KINDS)}")
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _window(cls, value: str) -> str:
        parse_window(value)
        return value

    def quiet_window(self, town_id: uuid.UUID) -> tuple[time, time] | None:
        return parse_window(self.quiet_hours_by_town.get(town_id, self.quiet_hours))


@lru_cache
def get_notify_settings() -> NotifySettings:
    return NotifySettings()
