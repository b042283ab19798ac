"""Researcher fixtures: tenants with money, mock upstreams over HTTP, price CSV, run helpers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta

import pytest

from ledger.models import Account, AccountKind, Hold, HoldStatus
from ledger.services.reconcile import reconcile
from tests.routing.conftest import (  # noqa: F401 - fixtures re-exported
    ROOT,
    _mock_server,
    _mock_server_b,
    apply,
    grant,
    make_tenant,
    upstream,
    upstream_b,
)


def price_csv(days: int = 260, start: str = "2025-01-01", drift: float = 0.002) -> str:
    """A deterministic daily series (weekdays only), trending up with a wobble."""
    lines = ["date,open,high,low,close,volume"]
    day = date.fromisoformat(start)
    close = 100.0
    n = 0
    while n < days:
        if day.weekday() < 5:
            wobble = ((n * 37) % 11 - 5) / 200
            open_ = close
            close = round(close * (1 + drift + wobble / 5), 2)
            high = round(max(open_, close) * 1.01, 2)
            low = round(min(open_, close) * 0.99, 2)
            lines.append(f"{day.isoformat()},{open_:.2f},{high},{low},{close:.2f},{1000 + n}")
            n += 1
        day += timedelta(days=1)
    return "\n".join(lines) + "\n"


def research_routes(base_url: str, *, model: str = "researcher-model", price=None, wallet="CREDIT"):
    apply(
        [{"name": "research-up", "base_url": base_url, "wallet": wallet}],
        [
            {
                "name": model,
                "routes": [
                    {
                        "upstream": "research-up",
                        "model": "gpt-4o-mini",
                        "price": price or {"input": "1000", "output": "2000"},
                    }
                ],
            }
        ],
    )


def run_body(**overrides) -> dict:
    body = {
        "question": "Is NVDA's momentum holding after earnings?",
        "tickers": ["NVDA"],
        "depth": "quick",
        "model": "researcher-model",
        "budget": {"currency": "CREDIT", "amount": "50"},
        "prices": price_csv(),
    }
    body.update(overrides)
    return body


def wallet(org, currency: str = "CREDIT") -> Account:
    return Account.objects.get(org=org, currency=currency, kind=AccountKind.WALLET)


def assert_reconciled(org=None) -> None:
    assert not Hold.objects.filter(status=HoldStatus.PENDING).exists()
    report = reconcile(org=org)
    assert report.ok, "\n".join(str(p) for p in report.problems)


@pytest.fixture(scope="session")
def redis_broker_url():
    from django.conf import settings

    return settings.REDIS_URL


def kill(process: subprocess.Popen) -> None:
    process.kill()
    process.wait(timeout=10)


# --- a real Celery worker ------------------------------------------------------------------


class Worker:
    """`celery -A config worker` in a subprocess, on Redis and the test database."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def worker_start(**extra_env: str) -> Worker:
    from django.conf import settings

    db = settings.DATABASES["default"]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.researcher.worker_settings",
        "TEST_DATABASE_URL": f"postgres://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "ROUTING_TABLE_CACHE_SECONDS": "0",
        "ROUTING_RETRY_BACKOFF_SECONDS": "0.01",
        "CONN_MAX_AGE": "0",
        "LOG_LEVEL": "WARNING",
        **extra_env,
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
            "--loglevel=WARNING",
            "-Q",
            QUEUE,
        ],
        cwd=ROOT,
        env=env,
    )
    return Worker(process)


QUEUE = "researcher-tests"
_sender: list = []


def send_to_worker(run_id) -> None:
    """Queue the run on Redis (the test process itself runs Celery eagerly)."""
    from celery import Celery
    from django.conf import settings

    if not _sender:
        _sender.append(Celery("researcher-tests", broker=settings.REDIS_URL))
    _sender[0].send_task("researcher.tasks.research_run_execute", args=[str(run_id)], queue=QUEUE)


@pytest.fixture
def queue_on_redis(monkeypatch):
    from celery import Celery
    from django.conf import settings

    from researcher import services

    Celery("purge", broker=settings.REDIS_URL).connection_for_write().default_channel.queue_purge(
        QUEUE
    )
    monkeypatch.setattr(services, "run_enqueue", lambda run_id: send_to_worker(run_id))


@pytest.fixture
def worker(queue_on_redis):
    started = worker_start()
    yield started
    started.stop()


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {predicate}")


def run_status(run_id) -> str:
    from researcher.models import ResearchRun

    return ResearchRun.objects.get(pk=run_id).status


def member_client(org, role: str = "owner"):
    from django.test import Client

    from tests.factories import MembershipFactory

    client = Client()
    client.force_login(MembershipFactory(org=org, role=role).user)
    return client


PROMPT = "Summarise the market today. " * 60  # ~1800 characters: its hold covers the mock's usage


def api_call(t, model: str = "researcher-model") -> str:
    """One ordinary API request through the engine in process; returns its request id."""
    import asyncio
    import uuid

    from asgiref.sync import sync_to_async
    from django.db import connections

    from routing.auth import key_context_for
    from routing.db import pg_pool_close
    from routing.engine import completion_create

    ctx = key_context_for(org_id=t.org.pk, project_id=t.project.pk, api_key_id=t.api_key.pk)
    request_id = "req_" + uuid.uuid4().hex

    async def call():
        try:
            await completion_create(
                ctx=ctx,
                body={
                    "model": model,
                    "messages": [{"role": "user", "content": PROMPT}],
                    "max_tokens": 300,
                },
                request_id=request_id,
            )
        finally:
            await pg_pool_close()
            await sync_to_async(connections.close_all, thread_sensitive=False)()

    asyncio.run(call())
    return request_id
