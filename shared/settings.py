"""Settings for every process, read from the environment (prefix ``CORDON_``)."""

from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET = "cordon-embedded-demo-secret-change-me"
MAX_ACCESS_TOKEN_MINUTES = 15


class Mode(StrEnum):
    embedded = "embedded"
    distributed = "distributed"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CORDON_", env_file=".env", extra="ignore")

    mode: Mode = Mode.embedded
    # Embedded mode keeps one SQLite file per service (and the bus) in this folder.
    data_dir: Path = Path("data")
    # When set, services use PostgreSQL, each in its own schema named schema_prefix + service.
    database_url: str | None = None
    schema_prefix: str = ""
    broker_url: str | None = None
    exchange: str = "cordon"
    redis_url: str | None = None
    secret_key: str = DEFAULT_SECRET
    # The town office's clock (IANA name): local days, quiet hours, service-time targets and
    # recurring requests fall in it, and the console shows times in it.
    time_zone: str = "Asia/Shanghai"
    # Access tokens are short: what they carry (role, scope) may change at any moment, and a
    # revoked one is refused by every service (docs/architecture.md, "Sessions").
    access_token_minutes: int = Field(default=15, ge=1, le=MAX_ACCESS_TOKEN_MINUTES)
    # A session (its chain of rotating refresh tokens) ends this long after the sign-in.
    refresh_token_hours: int = Field(default=12, ge=1, le=7 * 24)
    # Bounded retries before a message is parked for an operator.
    delivery_limit: int = 5
    retry_base_seconds: float = 1.0
    # A publish not confirmed in this time fails (and is tried again), rather than hanging.
    publish_timeout_seconds: float = 30.0
    # A worker task (relay, consumer, job) that fails is restarted after this delay, doubling
    # up to the cap; /readyz answers 503 while one has been down longer than the grace.
    worker_restart_seconds: float = 1.0
    worker_restart_cap_seconds: float = 60.0
    worker_grace_seconds: float = 30.0
    relay_batch: int = 500
    relay_interval_seconds: float = 0.5
    # How long work that needs an up-to-date projection (scheduling a round) waits for it
    # to catch up before answering 503 with Retry-After.
    projection_wait_seconds: float = 3.0
    max_upload_mb: int = 200
    # How far a phone's or a lab's clock may run ahead of ours, or a swab be taken past its
    # round's window, before the time is refused as impossible (see clock_skew).
    clock_skew_minutes: int = Field(default=10, ge=0, le=24 * 60)
    # How far back a stated time may go where nothing in the system dates its start (a
    # stock receipt: a store's row is made on first use and the directory keeps no place's
    # creation time). Paper receipts from a lockdown's first weeks are entered once the
    # system is up, and the field's lockdowns ran about 50 days; a time years back is a typo
    # in the year that would head the stock card and the donation register. See
    # earliest_stated.
    backdate_days: int = Field(default=60, ge=1, le=366)
    # Failed sign-ins counted per window: per (username, address) pair, per address across
    # usernames (password spraying), and per username from everywhere (softer; addresses the
    # user signed in from before are exempt), so nobody locks an owner out from afar.
    # argon2's cost for new password hashes: "standard" (64 MB, a fifth of a second of a
    # core), or "least" for a test suite that makes and signs in thousands of accounts. The
    # distributed mode refuses "least"; a hash is verified at the cost it was made with.
    password_hash_cost: Literal["standard", "least"] = "standard"
    login_window_seconds: int = 15 * 60
    login_failures_per_pair: int = 5
    login_failures_per_address: int = 20
    login_failures_per_username: int = 100
    # JSON log lines, or readable ones; unset: JSON in the distributed mode (where logs are
    # collected), readable in the embedded mode (a person at a terminal). See json_logs.
    log_json: bool | None = None
    # Where a process that does not serve the registry's sign-in (the testing service on
    # its own port) tells its /docs to get a token: the registry's or the gateway's URL.
    token_url: str | None = None
    # Browser origins allowed to call this API across origins, e.g. a service's own /docs
    # signing in at the registry (http://127.0.0.1:8002). Empty: none.
    cors_origins: list[str] = []
    # The signature the SMS provider puts on every text (registered with it, e.g.
    # 【某某街道】): counted in each message's length and segments.
    sms_signature: str = Field(default="【Cordon】", max_length=20)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not a time zone name such as Asia/Shanghai") from exc
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The town office's clock."""
        return ZoneInfo(self.time_zone)

    @model_validator(mode="after")
    def _distributed_needs_real_parts(self) -> "Settings":
        if self.mode is Mode.distributed:
            missing = [
                name
                for name in ("database_url", "broker_url", "redis_url")
                if not getattr(self, name)
            ]
            if missing:
                names = ", ".join(f"CORDON_{m.upper()}" for m in missing)
                raise ValueError(f"the distributed mode needs {names}")
            if self.password_hash_cost != "standard":
                raise ValueError("the distributed mode hashes passwords at the standard cost")
            if self.secret_key == DEFAULT_SECRET or len(self.secret_key) < 32:
                raise ValueError(
                    "the distributed mode refuses the default or a short CORDON_SECRET_KEY; "
                    "set at least 32 random characters"
                )
        return self

    @property
    def clock_skew(self) -> timedelta:
        """The tolerance for times from other clocks: sampled tubes, lab results."""
        return timedelta(minutes=self.clock_skew_minutes)

    def latest_stated(self) -> datetime:
        """The latest time another clock (a phone's, a lab's) may state now: later is a time
        that has not come yet."""
        return datetime.now(UTC) + self.clock_skew

    def earliest_stated(self) -> datetime:
        """The earliest time a person may state for what happened, where nothing dates its
        start (``backdate_days`` back): earlier is a slip of the year, not late paperwork."""
        return datetime.now(UTC) - timedelta(days=self.backdate_days)

    def today(self) -> date:
        """The town office's date now: expiry dates are read on its calendar."""
        return datetime.now(self.zone).date()

    @property
    def json_logs(self) -> bool:
        """Whether logs are JSON lines: CORDON_LOG_JSON when set, else in distributed mode."""
        return self.mode is Mode.distributed if self.log_json is None else self.log_json

    def service_database_url(self, service: str) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / f'{service}.db'}"

    def service_schema(self, service: str) -> str:
        return f"{self.schema_prefix}{service}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
