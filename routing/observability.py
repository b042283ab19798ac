"""Per-request observability for the proxy: one JSON log line and Prometheus metrics.

The engine calls these at the few points where something worth counting happens; this
module decides how it is recorded. Never pass secrets or message bodies here: the log line
and the metric labels carry ids, names and numbers only.

Cheap on purpose (hot path): one dict, one orjson dump when INFO is on for the request
logger, and a few counter increments (mmap writes in multi-process mode, see config/metrics).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import threading
import time
from decimal import Decimal
from logging.handlers import QueueHandler, QueueListener

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


class _Listener(QueueListener):
    """Writes queued records; an Event in the queue is a flush marker (set once reached)."""

    def handle(self, record) -> None:
        if isinstance(record, threading.Event):
            record.set()
            return
        super().handle(record)


class QueuedJsonHandler(QueueHandler):
    """The request log's handler: the event loop only enqueues the record (after the
    handler's filters, so redaction still runs first); a thread of this process formats it
    as JSON and writes it (issue 20: the write was a syscall on the loop per request).

    The thread starts on the first record in each process, so a handler configured before
    a fork (Celery's prefork pool) still writes from the child. `flush()` waits until what
    was queued before it is written; the rest is written at exit."""

    def __init__(self, stream=None) -> None:
        super().__init__(queue.SimpleQueue())
        self.target = logging.StreamHandler(stream)
        self.formatter = JsonFormatter()
        self.target.setFormatter(self.formatter)
        self._listener: _Listener | None = None
        self._pid = 0
        self._start_lock = threading.Lock()

    def setFormatter(self, fmt) -> None:
        super().setFormatter(fmt)
        self.target.setFormatter(fmt)

    def setStream(self, stream):
        """Like StreamHandler.setStream: what was queued so far still goes to the old one."""
        self.flush()
        return self.target.setStream(stream)

    def prepare(self, record):
        return record  # in-process: formatting happens on the listener's thread

    def emit(self, record) -> None:
        if self._pid != os.getpid():
            self._start()
        super().emit(record)

    def _start(self) -> None:
        with self._start_lock:
            if self._pid == os.getpid():
                return
            self.queue = queue.SimpleQueue()  # a forked child must not share the parent's
            self._listener = _Listener(self.queue, self.target)
            self._listener.start()
            self._pid = os.getpid()
            atexit.register(self._stop)

    def _stop(self) -> None:
        with self._start_lock:
            listener, self._listener = self._listener, None
            if listener is not None and self._pid == os.getpid():
                listener.stop()  # writes what is queued, then ends the thread
            self._pid = 0  # a record after this starts a new thread
        with contextlib.suppress(ValueError):  # the stream was closed before us (at exit)
            self.target.flush()

    def flush(self) -> None:
        if self._listener is not None and self._pid == os.getpid():
            reached = threading.Event()
            self.queue.put_nowait(reached)
            reached.wait(timeout=5)
        self.target.flush()

    def close(self) -> None:
        self._stop()
        super().close()


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
