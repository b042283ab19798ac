"""Per-request observability for the proxy: one JSON log line and Prometheus metrics.

The engine calls these at the few points where something worth counting happens; this
module decides how it is recorded. Never pass secrets or message bodies here: the log line
and the metric labels carry ids, names and numbers only.

Cheap on purpose (hot path): one dict, one orjson dump when INFO is on for the request
logger, and a few counter increments (mmap writes in multi-process mode, see config/metrics).
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal

import orjson

from config import metrics

log = logging.getLogger("tokenforge.requests")

# Errors where `model` is whatever the client typed, not a configured model: one label for
# all of them, or a client could grow the metrics without bound with random names.
_UNRESOLVED_MODEL = frozenset({"model_not_found", "model_not_allowed"})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, plus the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            data.update(fields)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


def request_finished(
    *,
    request_id: str,
    org_id: int | None,
    key_prefix: str,
    model: str,
    route: str,
    wallet: str,
    status: int,
    cost: Decimal | None,
    latency_ms: float,
    fallback: bool,
    stream: bool,
    kind: str = "api",
    error_code: str = "",
) -> None:
    """A proxied request ended (settled, failed or refused)."""
    label = "other" if error_code in _UNRESOLVED_MODEL else model[:64]
    metrics.REQUESTS.labels(
        model=label, status=str(status), route=route or "none", wallet=wallet or "none"
    ).inc()
    metrics.LATENCY.labels(model=label, stream="true" if stream else "false").observe(
        latency_ms / 1000.0
    )
    if fallback:
        metrics.FALLBACKS.labels(model=label).inc()
    if cost and wallet:
        # Counters take floats; this is for dashboards, the ledger keeps the exact Decimal.
        metrics.SPEND.labels(wallet=wallet).inc(float(cost))
    if log.isEnabledFor(logging.INFO):
        log.info(
            "request_finished",
            extra={
                "fields": {
                    "request_id": request_id,
                    "org": org_id,
                    "key_prefix": key_prefix,
                    "model": model[:200],
                    "route": route,
                    "wallet": wallet,
                    "status": status,
                    "cost": None if cost is None else format(cost, "f"),
                    "latency_ms": round(latency_ms, 1),
                    "fallback": fallback,
                    "stream": stream,
                    "kind": kind,
                    "error_code": error_code,
                }
            },
        )


def attempt_failed(*, upstream: str, model: str, reason: str) -> None:
    """One attempt against an upstream failed (connection, timeout, 429, 5xx, ...)."""
    metrics.UPSTREAM_FAILURES.labels(upstream=upstream, model=model, reason=reason[:40]).inc()


def route_cooled_down(*, upstream: str, model: str) -> None:
    """A route crossed its failure threshold and is cooling down."""
    metrics.COOLDOWNS.labels(upstream=upstream, model=model).inc()
