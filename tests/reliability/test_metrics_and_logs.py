"""Operability: the token-protected Prometheus `/metrics`, summed across worker processes,
with ledger gauges read at scrape time, and the one-JSON-line-per-request log."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from decimal import Decimal

import httpx
import pytest
from django.test import Client, override_settings

from ledger.models import Hold
from ledger.services.holds import hold_place
from routing import observability
from tests.reliability.conftest import ROOT, start_server
from tests.routing.conftest import make_tenant, one_route, wait_no_pending_holds

TOKEN = "metrics-token-for-tests-0123456789"


@pytest.mark.django_db
def test_metrics_is_not_found_without_a_configured_token():
    with override_settings(METRICS_TOKEN=""):
        assert Client().get("/metrics").status_code == 404


@pytest.mark.django_db
@override_settings(METRICS_TOKEN=TOKEN)
def test_metrics_needs_the_bearer_token():
    client = Client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Token {TOKEN}").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")


@pytest.mark.django_db(transaction=True)
@override_settings(METRICS_TOKEN=TOKEN)
def test_metrics_expose_request_counters_latency_failures_and_ledger_gauges():
    t = make_tenant(credit="10")
    observability.request_finished(
        request_id="req_metrics_1",
        org_id=t.org.pk,
        key_prefix="tf-abc",
        model="metrics-model-a",
        route="relay-a/m",
        wallet="CREDIT",
        status=200,
        cost=Decimal("0.25"),
        latency_ms=120.0,
        fallback=True,
        stream=False,
    )
    observability.attempt_failed(upstream="relay-metrics", model="m", reason="503")
    observability.route_cooled_down(upstream="relay-metrics", model="m")
    hold = hold_place(org_id=t.org.pk, currency="CREDIT", amount=Decimal("1.5"), request_id="r1")
    try:
        body = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    finally:
        from ledger.services.holds import hold_void

        hold_void(hold_id=hold.pk)
    assert (
        'tokenforge_requests_total{model="metrics-model-a",route="relay-a/m",'
        'status="200",wallet="CREDIT"} 1.0' in body
    )
    assert 'tokenforge_request_latency_seconds_bucket{le="0.25",model="metrics-model-a"' in body
    assert 'tokenforge_fallbacks_total{model="metrics-model-a"} 1.0' in body
    assert (
        'tokenforge_upstream_failures_total{model="m",reason="503",upstream="relay-metrics"} 1.0'
        in body
    )
    assert 'tokenforge_route_cooldowns_total{model="m",upstream="relay-metrics"} 1.0' in body
    assert 'tokenforge_spend_total{wallet="CREDIT"}' in body
    assert 'tokenforge_holds_open{currency="CREDIT"} 1.0' in body
    assert 'tokenforge_holds_open_amount{currency="CREDIT"} 1.5' in body
    assert 'tokenforge_wallet_balance{currency="CREDIT"}' in body
    assert Hold.objects.get(pk=hold.pk).status == "voided"


WORKER = textwrap.dedent(
    """
    import django
    django.setup()
    from routing import observability
    for i in range(COUNT):
        observability.request_finished(
            request_id=f"req_{i}", org_id=1, key_prefix="tf-x", model="multi-process-model",
            route="r/m", wallet="RMB", status=200, cost=None, latency_ms=5.0,
            fallback=False, stream=True,
        )
    """
)


@pytest.mark.django_db(transaction=True)
def test_counts_from_several_worker_processes_are_summed_by_one_scrape(tmp_path):
    """Like uvicorn workers: each process counts in its own file; /metrics adds them up."""
    env_dir = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "METRICS_TOKEN": TOKEN}
    server = start_server(env_dir)
    try:
        env = {**os.environ, **env_dir, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", WORKER.replace("COUNT", str(count))], cwd=ROOT, env=env
            )
            for count in (7, 5)
        ]
        assert [w.wait(timeout=120) for w in workers] == [0, 0]
        response = httpx.get(
            server.url + "/metrics", headers={"authorization": f"Bearer {TOKEN}"}, timeout=30
        )
    finally:
        server.stop()
    assert response.status_code == 200
    line = (
        'tokenforge_requests_total{model="multi-process-model",route="r/m",'
        'status="200",wallet="RMB"} 12.0'
    )
    assert line in response.text


def test_each_request_is_one_json_log_line_with_the_contract_fields():
    (handler,) = logging.getLogger("tokenforge.requests").handlers  # configured in LOGGING
    assert isinstance(handler.formatter, observability.JsonFormatter)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        observability.request_finished(
            request_id="req_log_1",
            org_id=42,
            key_prefix="tf-AbCd",
            model="gpt-4o-mini",
            route="relay-a/gpt-4o-mini",
            wallet="RMB",
            status=402,
            cost=None,
            latency_ms=3.25,
            fallback=False,
            stream=True,
            error_code="insufficient_balance",
        )
        handler.flush()  # written by the handler's thread, off the event loop
    finally:
        handler.setStream(previous)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["logger"] == "tokenforge.requests" and entry["event"] == "request_finished"
    assert {k: entry[k] for k in ("request_id", "org", "key_prefix", "model", "route")} == {
        "request_id": "req_log_1",
        "org": 42,
        "key_prefix": "tf-AbCd",
        "model": "gpt-4o-mini",
        "route": "relay-a/gpt-4o-mini",
    }
    assert entry["status"] == 402 and entry["cost"] is None and entry["latency_ms"] == 3.2
    assert entry["error_code"] == "insufficient_balance" and entry["wallet"] == "RMB"


@pytest.mark.django_db(transaction=True)
def test_proxied_requests_reach_metrics_across_two_workers_and_log_one_line_each(
    upstream, tmp_path
):
    """End to end: the engine's hooks, two uvicorn workers, one scrape, one JSON line each."""
    one_route(upstream.base_url, model="metrics-live-model", price_in="1", price_out="1")
    t = make_tenant()
    server = start_server(
        {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"), "METRICS_TOKEN": TOKEN},
        workers=2,
        log_path=tmp_path / "server.log",
    )
    ids = []
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            headers = {"authorization": f"Bearer {t.key}"}
            body = {"model": "metrics-live-model", "messages": [{"role": "user", "content": "hi"}]}
            for i in range(6):  # new connections: both workers get some
                with httpx.Client(base_url=server.url, timeout=30) as fresh:
                    response = fresh.post(
                        "/v1/chat/completions", headers=headers, json={**body, "stream": i % 2 == 1}
                    )
                    assert response.status_code == 200
                    ids.append(response.headers["x-request-id"])
            refused = client.post(
                "/v1/chat/completions", headers=headers, json={**body, "model": "no-such-model"}
            )
            assert refused.status_code == 404
            ids.append(refused.headers["x-request-id"])
            wait_no_pending_holds()
            scrape = client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"}).text
    finally:
        server.stop()
    ok = re.search(
        r'tokenforge_requests_total\{model="metrics-live-model",route="relay-a/gpt-4o-mini",'
        r'status="200",wallet="CREDIT"\} ([0-9.]+)',
        scrape,
    )
    assert ok and float(ok.group(1)) == 6.0, scrape[:3000]
    assert 'tokenforge_requests_total{model="other",route="none",status="404"' in scrape
    assert "no-such-model" not in scrape  # client-typed names never become labels
    entries = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    requests = [e for e in entries if e.get("event") == "request_finished"]
    assert sorted(e["request_id"] for e in requests) == sorted(ids)
    assert {e["key_prefix"] for e in requests} == {t.api_key.prefix}
    assert t.key not in server.log()
    settled = [e for e in requests if e["status"] == 200]
    assert all(e["cost"] and e["route"] == "relay-a/gpt-4o-mini" for e in settled)
