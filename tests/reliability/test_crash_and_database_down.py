"""The web process SIGKILLed in the middle of streams, and PostgreSQL unreachable.

A crash mid-stream is charged for what was delivered: a stream writes ahead the charge of what
reached the client (ledger.services.safeguards), and the expired-hold sweep captures it instead
of voiding it. Afterwards no hold is open and the books balance. A gateway that cannot reach
its database refuses with 503 before anything goes upstream (the shared PostgreSQL is never
stopped: the server is pointed at a closed port).
"""

from __future__ import annotations

import threading
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from ledger.models import Hold, HoldStatus, UsageRecord
from ledger.services.holds import holds_expire
from tests.reliability.conftest import (
    assert_no_money_lost_or_created,
    free_port,
    start_server,
    wallet_totals,
)
from tests.routing.conftest import make_tenant, one_route

pytestmark = pytest.mark.django_db(transaction=True)

STREAMS = 20
MSG = [{"role": "user", "content": "hi"}]


def _open_stream(url: str, key: str, started: threading.Barrier, errors: list) -> None:
    try:
        with httpx.stream(
            "POST",
            url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={"model": "gpt-4o-mini", "messages": MSG, "stream": True},
            timeout=30,
        ) as response:
            lines = 0
            for line in response.iter_lines():
                if line.startswith("data: "):
                    lines += 1
                    if lines == 3:  # content delivered: tell the test, keep reading
                        started.wait(timeout=30)
            errors.append("the stream ended normally")  # it must not: the server dies first
    except (httpx.HTTPError, threading.BrokenBarrierError):
        pass  # the server was killed under us


def test_a_sigkilled_gateway_leaves_no_open_hold_and_charges_delivered_streams_after_the_sweep(
    upstream, tmp_path
):
    one_route(upstream.base_url, price_in="1", price_out="1")
    upstream.mode = "slow"
    upstream.slow_delay = 0.05  # 400 words over 20 s: the crash comes well before the end
    t = make_tenant(credit="100")
    before = wallet_totals()
    server = start_server({"HOLD_TTL_SECONDS": "2"}, log_path=tmp_path / "server.log")
    started = threading.Barrier(STREAMS + 1)
    errors: list[str] = []
    threads = [
        threading.Thread(target=_open_stream, args=(server.url, t.key, started, errors))
        for _ in range(STREAMS)
    ]
    try:
        for thread in threads:
            thread.start()
        started.wait(timeout=60)  # every stream has delivered content
        assert Hold.objects.filter(org=t.org, status=HoldStatus.PENDING).count() == STREAMS
        server.kill()
    finally:
        server.kill()
        for thread in threads:
            thread.join(timeout=30)
    assert errors == []
    # The crash settled nothing: the holds are still pending, the money reserved.
    pending = Hold.objects.filter(org=t.org, status=HoldStatus.PENDING)
    assert pending.count() == STREAMS
    assert all(h.settle_usage is not None and h.settle_cost > 0 for h in pending)
    # A hold lives at least its route's timeout x tries + 60 s: let that time pass.
    pending.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert holds_expire() == STREAMS  # the sweep (Celery beat runs it every 30 s)
    assert not Hold.objects.filter(status=HoldStatus.PENDING).exists()
    assert Hold.objects.filter(org=t.org, status=HoldStatus.CAPTURED).count() == STREAMS
    records = UsageRecord.objects.filter(org=t.org, status="settled")
    assert records.count() == STREAMS  # every answered stream is charged for what it delivered
    assert all(r.completion_tokens > 0 and r.stream and r.estimated for r in records)
    assert all({"kind": "settled_by_sweep_after_crash"} in r.anomalies for r in records)
    charged = sum(r.cost for r in records)
    assert wallet_totals()["CREDIT"] == before["CREDIT"] - charged
    assert_no_money_lost_or_created()

    # The restarted process serves again and charges normally.
    upstream.mode = "ok"
    restarted = start_server({"HOLD_TTL_SECONDS": "2"}, log_path=tmp_path / "server.log")
    try:
        response = httpx.post(
            restarted.url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {t.key}"},
            json={"model": "gpt-4o-mini", "messages": MSG},
            timeout=30,
        )
        assert response.status_code == 200
    finally:
        restarted.stop()
    assert UsageRecord.objects.filter(org=t.org, status="settled").count() == STREAMS + 1
    assert_no_money_lost_or_created()


@pytest.fixture(scope="module")
def gateway_without_database(django_db_setup, django_db_blocker):
    server = start_server(database_url=f"postgres://postgres@127.0.0.1:{free_port()}/nowhere")
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("path", "body", "shape"),
    [
        ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MSG}, "openai"),
        (
            "/v1/chat/completions",
            {"model": "gpt-4o-mini", "messages": MSG, "stream": True},
            "openai",
        ),
        ("/v1/embeddings", {"model": "gpt-4o-mini", "input": "hi"}, "openai"),
        ("/v1/messages", {"model": "gpt-4o-mini", "max_tokens": 5, "messages": MSG}, "anthropic"),
    ],
)
def test_with_postgresql_down_requests_get_503_before_anything_goes_upstream(
    gateway_without_database, upstream, tenant, path, body, shape
):
    one_route(upstream.base_url)
    response = httpx.post(
        gateway_without_database.url + path,
        headers={"authorization": f"Bearer {tenant.key}"},
        json=body,
        timeout=30,
    )
    assert response.status_code == 503, response.text
    data = response.json()
    if shape == "openai":
        assert data["error"]["code"] == "database_unavailable"
    else:
        assert data["type"] == "error" and data["error"]["type"] == "api_error"
    assert response.headers["x-request-id"]
    assert upstream.requests == []


def test_with_postgresql_down_healthz_says_so(gateway_without_database):
    response = httpx.get(gateway_without_database.url + "/healthz", timeout=30)
    assert response.status_code == 503
    assert response.json()["database"] == "down"
