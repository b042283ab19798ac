"""Gateway fixtures: the ASGI app under a real uvicorn (a subprocess on an ephemeral port,
talking to the test database), mock OpenAI upstreams on 127.0.0.1, tenants with money,
and the ledger invariants checked after every test."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest
from django.conf import settings

from ledger.models import Account, AccountKind, Hold, HoldStatus
from ledger.services.postings import system_account, transaction_post
from projects.services import key_create
from routing.services import routing_apply
from tests.factories import OrganizationFactory, ProjectFactory
from tests.mocks.openai_upstream import MockOpenAI

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Gateway:
    url: str
    process: subprocess.Popen

    def client(self, key: str, **kwargs) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, **kwargs)


def _start_gateway(redis_url: str, **extra_env: str):
    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":  # --ds config.settings.test_sqlite
        db_url = f"sqlite:///{db['NAME']}"
    else:
        auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
        db_url = f"postgres://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "TEST_DATABASE_URL": db_url,
        "TEST_SQLITE_PATH": db["NAME"],
        "REDIS_URL": redis_url,
        "ROUTING_TABLE_CACHE_SECONDS": "0",
        "ROUTING_RETRY_BACKOFF_SECONDS": "0.01",
        "ROUTING_COOLDOWN_FAILURES": "3",
        "ROUTING_COOLDOWN_SECONDS": "30",
        "PROXY_MAX_BODY_BYTES": "65536",
        "CONN_MAX_AGE": "0",
        "LOG_LEVEL": "WARNING",
        **extra_env,
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "config.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--lifespan",
            "off",
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/v1/models", timeout=1).status_code:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the gateway did not start")
        time.sleep(0.1)
    return Gateway(url=url, process=process)


def _stop_gateway(gw: Gateway) -> None:
    gw.process.terminate()
    try:
        gw.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        gw.process.kill()


@pytest.fixture(scope="session")
def gateway(django_db_setup, django_db_blocker) -> Gateway:
    gw = _start_gateway(settings.REDIS_URL)
    yield gw
    _stop_gateway(gw)


@pytest.fixture(scope="module")
def gateway_without_redis(django_db_setup, django_db_blocker) -> Gateway:
    """A gateway whose Redis is unreachable: it must keep serving on in-process state."""
    gw = _start_gateway("redis://127.0.0.1:1/0")
    yield gw
    _stop_gateway(gw)


@pytest.fixture(scope="session")
def _mock_server():
    server = MockOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def upstream(_mock_server) -> MockOpenAI:
    _mock_server.reset()
    return _mock_server


@pytest.fixture(scope="session")
def _mock_server_b():
    server = MockOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def upstream_b(_mock_server_b) -> MockOpenAI:
    _mock_server_b.reset()
    return _mock_server_b


def grant(org, currency: str, amount: str) -> None:
    wallet = Account.objects.get(org=org, currency=currency, kind=AccountKind.WALLET)
    transaction_post(
        org=org,
        kind="grant",
        legs=[
            (wallet, Decimal(amount)),
            (system_account(currency=currency, kind=AccountKind.GRANTS), -Decimal(amount)),
        ],
        reference=f"test-grant-{org.pk}-{currency}-{amount}-{time.monotonic_ns()}",
    )


@dataclass
class Tenant:
    org: object
    project: object
    key: str
    api_key: object


def make_tenant(*, credit: str = "100", rmb: str = "100", **key_options) -> Tenant:
    org = OrganizationFactory()
    project = ProjectFactory(org=org)
    if Decimal(credit):
        grant(org, "CREDIT", credit)
    if Decimal(rmb):
        grant(org, "RMB", rmb)
    created = key_create(project=project, name="test", **key_options)
    return Tenant(org=org, project=project, key=created.secret, api_key=created.api_key)


@pytest.fixture
def tenant(transactional_db) -> Tenant:
    return make_tenant()


def apply(upstreams: list[dict], models: list[dict], env: dict | None = None) -> None:
    env = env or {}
    for up in upstreams:
        up.setdefault("provider", "openai-compatible")
        up.setdefault("wallet", "CREDIT")
        up.setdefault("timeout", 5)
        if "api_key_env" not in up:
            up["api_key_env"] = "K_" + up["name"].upper().replace("-", "_")
            env[up["api_key_env"]] = "sk-upstream-" + up["name"]
    routing_apply(data={"upstreams": upstreams, "models": models}, env=env)


def one_route(
    base_url: str,
    *,
    model: str = "gpt-4o-mini",
    upstream_model: str = "gpt-4o-mini",
    price_in: str = "1.05",
    price_out: str = "4.20",
    wallet: str = "CREDIT",
) -> None:
    apply(
        [{"name": "relay-a", "base_url": base_url, "wallet": wallet}],
        [
            {
                "name": model,
                "routes": [
                    {
                        "upstream": "relay-a",
                        "model": upstream_model,
                        "price": {"input": price_in, "output": price_out},
                    }
                ],
            }
        ],
    )


def wait_no_pending_holds(timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while Hold.objects.filter(status=HoldStatus.PENDING).exists():
        if time.monotonic() > deadline:
            raise AssertionError("holds still pending after the requests ended")
        time.sleep(0.05)


def assert_ledger_invariants(*, wait_for_holds: bool = True) -> None:
    """`reconcile` over the whole test database must pass (issue 3's invariants)."""
    if wait_for_holds:
        wait_no_pending_holds()
    from ledger.services.reconcile import reconcile

    report = reconcile()
    assert report.ok, "reconcile failed after the test:\n" + "\n".join(map(str, report.problems))


@pytest.fixture(autouse=True)
def _ledger_invariants(request):
    """After every test that used the database, reconcile it (before its rollback)."""
    marker = request.node.get_closest_marker("django_db")
    requested = [name for name in ("transactional_db", "db") if name in request.fixturenames]
    if marker is None and not requested:
        yield
        return
    if marker is None:
        request.getfixturevalue(requested[0])  # set up first, so torn down after this check
    transactional = (marker is not None and marker.kwargs.get("transaction")) or (
        "transactional_db" in request.fixturenames
    )
    yield
    # Only a committed test can have holds a gateway process still settles.
    assert_ledger_invariants(wait_for_holds=bool(transactional))
