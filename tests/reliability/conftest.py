"""Fault-test fixtures: the gateway fixtures of tests/routing (a real uvicorn on the test
database, mock upstreams, ledger invariants after every transactional test), plus servers
started with a tailored environment (short hold TTL, a dead database, a metrics token)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
from django.conf import settings
from django.db.models import Sum

from ledger.models import Account, AccountKind, Hold, HoldStatus, Posting
from tests.routing.conftest import (  # noqa: F401 - fixtures shared with the routing tests
    _ledger_invariants,
    _mock_server,
    _mock_server_b,
    gateway,
    gateway_without_redis,
    tenant,
    upstream,
    upstream_b,
)

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_url() -> str:
    db = settings.DATABASES["default"]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


test_database_url.__test__ = False  # a helper, not a test


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log_path: Path | None = None
    env: dict = field(default_factory=dict)

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no settlement; what a crash looks like."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""


def start_server(
    extra_env: dict[str, str] | None = None,
    *,
    log_path: Path | None = None,
    workers: int = 1,
    database_url: str | None = None,
) -> Server:
    """uvicorn running config.asgi on 127.0.0.1 (its own process group, so a SIGKILL takes
    the workers too). stdout/stderr go to `log_path` when given (to grep for secrets)."""
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "TEST_DATABASE_URL": database_url or test_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "ROUTING_TABLE_CACHE_SECONDS": "0",
        "ROUTING_RETRY_BACKOFF_SECONDS": "0.01",
        "PROXY_MAX_BODY_BYTES": "65536",
        "CONN_MAX_AGE": "0",
        "LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    out = open(log_path, "ab") if log_path else None  # noqa: SIM115 - closed with the process
    cmd = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--lifespan", "off", "--log-level", "warning", "--no-access-log"]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    process = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True
    )
    if out:
        out.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/v1/models", timeout=2).status_code:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            raise RuntimeError("the server did not start")
        time.sleep(0.1)
    return Server(url=url, process=process, log_path=log_path, env=env)


def wallet_totals() -> dict[str, Decimal]:
    """Posted balance of all wallets, per currency."""
    rows = (
        Account.objects.filter(kind=AccountKind.WALLET).values("currency").annotate(s=Sum("posted"))
    )
    return {row["currency"]: row["s"] or Decimal(0) for row in rows}


def assert_no_money_lost_or_created() -> None:
    """Double entry: all postings of a currency sum to zero; each wallet's cached balance
    equals its postings; nothing is held without a pending hold; reconcile when it exists."""
    assert not Hold.objects.filter(status=HoldStatus.PENDING).exists(), "a hold is still open"
    for row in Posting.objects.values("account__currency").annotate(s=Sum("amount")):
        assert row["s"] == 0, f"{row['account__currency']} postings sum to {row['s']}, not 0"
    for account in Account.objects.filter(kind=AccountKind.WALLET):
        total = Posting.objects.filter(account=account).aggregate(s=Sum("amount"))["s"] or 0
        assert account.posted == total, f"{account}: posted {account.posted} != {total}"
        assert account.held == 0, f"{account}: {account.held} held with no open hold"
    try:
        from ledger.services.reconcile import reconcile
    except ImportError:
        return
    report = reconcile()
    assert report.ok, f"reconcile failed: {report}"
