"""Prometheus metrics, multi-process safe, and the token-protected `/metrics` view.

Several uvicorn workers each count in their own process, so prometheus-client runs in
multi-process mode: every process writes its counters to files under
PROMETHEUS_MULTIPROC_DIR (default `var/prometheus/`, set in settings before this module
imports prometheus_client) and a scrape sums them. Files of processes that are gone are
removed when a process starts, so the directory does not grow across restarts (their
counters then reset, which Prometheus' `rate()` handles).

Ledger figures (open holds, wallet balances) are not counted on the hot path: they are read
from PostgreSQL at scrape time with a few cheap aggregates.
"""

from __future__ import annotations

import contextlib
import glob
import hmac
import logging
import os
import re

from django.conf import settings
from django.http import Http404, HttpResponse

os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(settings.PROMETHEUS_MULTIPROC_DIR))

from prometheus_client import (  # noqa: E402 - the directory must be known before import
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client import values as _values  # noqa: E402
from prometheus_client.core import GaugeMetricFamily  # noqa: E402
from prometheus_client.multiprocess import MultiProcessCollector  # noqa: E402

# If something imported prometheus_client before the directory was in the environment, its
# metrics would live in this process's memory, invisible to the scrape: switch to files.
_values.ValueClass = _values.get_value_class()

log = logging.getLogger("tokenforge.metrics")

_PID_FILE = re.compile(r"_(\d+)\.db$")


def _dead_process_files_remove(directory: str) -> None:
    """Drop the files of processes that no longer run (crashed or restarted workers)."""
    for path in glob.glob(os.path.join(directory, "*.db")):
        match = _PID_FILE.search(path)
        if not match:
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        except PermissionError:  # alive, another user's
            pass


_MULTIPROC_DIR = os.environ["PROMETHEUS_MULTIPROC_DIR"]
os.makedirs(_MULTIPROC_DIR, exist_ok=True)
_dead_process_files_remove(_MULTIPROC_DIR)

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

REQUESTS = Counter(
    "tokenforge_requests",
    "Proxied requests that ended, by public model, HTTP status, route and wallet.",
    ["model", "status", "route", "wallet"],
)
LATENCY = Histogram(
    "tokenforge_request_latency_seconds",
    "Time from the request to its end (the last byte for streams).",
    ["model", "stream"],
    buckets=LATENCY_BUCKETS,
)
UPSTREAM_FAILURES = Counter(
    "tokenforge_upstream_failures",
    "Failed attempts against an upstream (connection, timeout, 429, 5xx, broken stream).",
    ["upstream", "model", "reason"],
)
FALLBACKS = Counter(
    "tokenforge_fallbacks",
    "Requests answered by another route or wallet than the first one tried.",
    ["model"],
)
COOLDOWNS = Counter(
    "tokenforge_route_cooldowns",
    "Routes put in cooldown after repeated failures.",
    ["upstream", "model"],
)
SPEND = Counter(
    "tokenforge_spend",
    "Amount charged to customers, by wallet currency (exact figures are in the ledger).",
    ["wallet"],
)


class LedgerCollector:
    """Open holds and wallet balances, read from PostgreSQL when Prometheus scrapes."""

    def collect(self):
        from django.db.models import Count, Sum

        from ledger.models import Account, AccountKind, Hold, HoldStatus

        holds = GaugeMetricFamily(
            "tokenforge_holds_open", "Pending holds (requests in flight).", labels=["currency"]
        )
        held = GaugeMetricFamily(
            "tokenforge_holds_open_amount",
            "Money reserved by pending holds.",
            labels=["currency"],
        )
        expired = GaugeMetricFamily(
            "tokenforge_holds_expired",
            "Pending holds past their expiry: the sweep is not running if this stays up.",
            labels=["currency"],
        )
        posted = GaugeMetricFamily(
            "tokenforge_wallet_balance",
            "Sum of the posted balances of all wallets.",
            labels=["currency"],
        )
        from django.utils import timezone

        pending = Hold.objects.filter(status=HoldStatus.PENDING)
        for row in pending.values("wallet__currency").annotate(n=Count("pk"), s=Sum("amount")):
            holds.add_metric([row["wallet__currency"]], row["n"])
            held.add_metric([row["wallet__currency"]], float(row["s"] or 0))
        for row in (
            pending.filter(expires_at__lt=timezone.now())
            .values("wallet__currency")
            .annotate(n=Count("pk"))
        ):
            expired.add_metric([row["wallet__currency"]], row["n"])
        for row in (
            Account.objects.filter(kind=AccountKind.WALLET)
            .values("currency")
            .annotate(s=Sum("posted"))
        ):
            posted.add_metric([row["currency"]], float(row["s"] or 0))
        yield from (holds, held, expired, posted)


def metrics_render() -> bytes:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=_MULTIPROC_DIR)
    registry.register(LedgerCollector())
    return generate_latest(registry)


def metrics_view(request):
    """GET /metrics with `Authorization: Bearer METRICS_TOKEN`: 404 when no token is set
    (the endpoint does not exist), 401 for a missing or wrong one."""
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404
    header = request.headers.get("authorization") or ""
    given = header[7:].strip() if header[:7].lower() == "bearer " else ""
    if not given or not hmac.compare_digest(given.encode(), token.encode()):
        response = HttpResponse("Unauthorized.\n", status=401, content_type="text/plain")
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics_render(), content_type=CONTENT_TYPE_LATEST)
