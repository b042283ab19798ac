"""Per-request observability for the proxy: one JSON log line and Prometheus metrics.

The engine calls these at the few points where something worth counting happens; this
module decides how it is recorded. Never pass secrets or message bodies here.
"""

from __future__ import annotations

from decimal import Decimal


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


def attempt_failed(*, upstream: str, model: str, reason: str) -> None:
    """One attempt against an upstream failed (connection, timeout, 429, 5xx, ...)."""


def route_cooled_down(*, upstream: str, model: str) -> None:
    """A route crossed its failure threshold and is cooling down."""
