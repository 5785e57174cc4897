"""Structured logs with correlation ids, and the Prometheus metrics every process exposes."""

import json
import logging
import sys
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge, Histogram

correlation_id: ContextVar[str] = ContextVar("correlation_id", default="-")


def new_correlation_id() -> str:
    return uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": correlation_id.get(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class ReadableFormatter(logging.Formatter):
    """One line a person reads at a terminal: time, level, logger, message, correlation id."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        flow = correlation_id.get()
        return line if flow == "-" else f"{line} [{flow}]"


def configure_logging(*, json_lines: bool, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(ReadableFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiormq").setLevel(logging.WARNING)
    logging.getLogger("aio_pika").setLevel(logging.WARNING)


HTTP_REQUESTS = Histogram(
    "cordon_http_request_seconds",
    "HTTP requests by route and status",
    ["method", "route", "status"],
)
MESSAGES = Counter(
    "cordon_messages_total",
    "Bus messages by service, queue and state (published, consumed, duplicate, retried, parked)",
    ["service", "queue", "state"],
)
OUTBOX_BACKLOG = Gauge(
    "cordon_outbox_backlog", "Events committed but not yet published", ["service"]
)
QUEUE_DEPTH = Gauge(
    "cordon_queue_depth", "Messages waiting in a consumer queue (queue lag)", ["queue", "kind"]
)
PROJECTION_STALE = Counter(
    "cordon_projection_stale_total",
    "Records a projection dropped because it held something newer (events reordered)",
    ["service", "projection", "table"],
)
PROJECTION_LAG_EVENTS = Gauge(
    "cordon_projection_lag_events",
    "Stream positions the producer has committed beyond what the projection applied",
    ["service", "projection", "stream"],
)
PROJECTION_LAG_SECONDS = Gauge(
    "cordon_projection_lag_seconds",
    "How much older the projection's view is than the producer's latest committed event",
    ["service", "projection", "stream"],
)
WORKER_UP = Gauge(
    "cordon_worker_task_up", "1 while a background task (relay, consumer, job) runs", ["task"]
)
WORKER_RESTARTS = Counter(
    "cordon_worker_task_restarts_total", "Background tasks restarted after a failure", ["task"]
)
SMS_MESSAGES = Gauge(
    "cordon_notify_messages", "Notify's messages by delivery state (queued, sent, …)", ["state"]
)
SMS_HANDED = Counter(
    "cordon_notify_gateway_calls",
    "Calls to SMS gateways by outcome (handed, busy, rejected, uncertain)",
    ["gateway", "outcome"],
)
