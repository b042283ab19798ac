"""/v1/research/runs: create (202 with the estimate), list, detail, cancel; every bad input a
400 naming the field; a budget too small a 402; another tenant's run a 404 everywhere."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from ledger.models import Hold, UsageRecord
from researcher import services
from researcher.execution import run_execute
from researcher.models import ResearchRun
from tests.researcher.conftest import make_tenant, price_csv, research_routes, run_body

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def no_worker(monkeypatch):
    """Runs stay queued: the test drives execution itself."""
    monkeypatch.setattr(services, "run_enqueue", lambda run_id: None)


def _client(key: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def _post(client: Client, path: str, body=None):
    return client.post(path, data=json.dumps(body or {}), content_type="application/json")


def test_create_answers_202_with_the_estimate_and_the_run_finishes(upstream, no_worker):
    t = make_tenant()
    research_routes(upstream.base_url)
    client = _client(t.key)
    response = _post(client, "/v1/research/runs", run_body())
    assert response.status_code == 202, response.content
    data = response.json()
    assert data["status"] == "queued" and set(data["estimate"]) == {"currency", "min", "max"}
    assert data["estimate"]["currency"] == "CREDIT"
    assert float(data["estimate"]["min"]) <= float(data["estimate"]["max"])
    run_execute(run_id=data["id"])
    detail = client.get(f"/v1/research/runs/{data['id']}").json()
    assert detail["status"] == "succeeded"
    for field in (
        "id",
        "question",
        "tickers",
        "depth",
        "model",
        "budget",
        "spent",
        "steps",
        "report",
        "error",
        "created_at",
        "started_at",
        "finished_at",
    ):
        assert field in detail
    step = detail["steps"][0]
    assert set(step) >= {
        "request_id",
        "name",
        "model",
        "route",
        "wallet",
        "cost",
        "prompt_tokens",
        "completion_tokens",
        "latency_ms",
        "status",
    }
    generation = client.get(f"/v1/generation?id={step['request_id']}").json()
    assert generation["kind"] == "researcher" and generation["researcher_run"] == data["id"]
    assert detail["report"].strip()


def test_the_list_is_the_keys_projects_runs_newest_first_and_paginated(upstream, no_worker):
    t = make_tenant()
    research_routes(upstream.base_url)
    client = _client(t.key)
    ids = [_post(client, "/v1/research/runs", run_body()).json()["id"] for _ in range(3)]
    page = client.get("/v1/research/runs?limit=2").json()
    assert [r["id"] for r in page["data"]] == ids[::-1][:2] and page["has_more"]
    rest = client.get(f"/v1/research/runs?limit=2&after={page['last_id']}").json()
    assert [r["id"] for r in rest["data"]] == [ids[0]] and not rest["has_more"]
    assert client.get("/v1/research/runs?limit=0").status_code == 400


BAD = [
    ({"budget": {"currency": "CREDIT", "amount": "-1"}}, "budget.amount"),
    ({"budget": {"currency": "CREDIT", "amount": "ten"}}, "budget.amount"),
    ({"budget": {"currency": "CREDIT", "amount": True}}, "budget.amount"),
    ({"budget": {"currency": "EUR", "amount": "5"}}, "budget.currency"),
    ({"budget": "5"}, "budget"),
    ({"depth": "bottomless"}, "depth"),
    ({"question": ""}, "question"),
    ({"question": "   "}, "question"),
    ({"tickers": []}, "tickers"),
    ({"tickers": ["NV DA!"]}, "tickers"),
    ({"model": "no-such-model"}, "model"),
    (
        {"prices": "date,open,high,low,close,volume\n2025-01-02,1,2,0.5,1.5,10\nnope,1,2,3,4,5"},
        "prices",
    ),
    ({"prices": "when,what\n1,2"}, "prices"),
    ({"prices": 42}, "prices"),
]


@pytest.mark.parametrize(("override", "param"), BAD)
def test_every_bad_input_is_a_400_naming_the_field(upstream, no_worker, override, param):
    t = make_tenant()
    research_routes(upstream.base_url)
    before = list(Hold.objects.values_list("pk", flat=True))
    response = _post(_client(t.key), "/v1/research/runs", run_body(**override))
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert not ResearchRun.objects.exists()
    assert list(Hold.objects.values_list("pk", flat=True)) == before


def test_a_bad_csv_line_is_named_in_the_message(upstream, no_worker):
    t = make_tenant()
    research_routes(upstream.base_url)
    csv = price_csv(10).splitlines()
    csv[4] = "2025-01-07,100,99,98,101,5"
    response = _post(_client(t.key), "/v1/research/runs", run_body(prices="\n".join(csv)))
    assert response.status_code == 400 and "line 5" in response.json()["error"]["message"]


def test_a_non_json_body_and_a_bad_key_are_refused():
    t = make_tenant()
    client = _client(t.key)
    response = client.post("/v1/research/runs", data="{", content_type="application/json")
    assert response.status_code == 400
    assert _post(_client("tf-nope"), "/v1/research/runs", run_body()).status_code == 401


def test_a_budget_too_small_is_a_402_with_the_estimate(upstream, no_worker):
    t = make_tenant()
    research_routes(upstream.base_url)
    response = _post(
        _client(t.key),
        "/v1/research/runs",
        run_body(budget={"currency": "CREDIT", "amount": "0.0001"}),
    )
    assert response.status_code == 402
    error = response.json()["error"]
    assert error["code"] == "run_budget_too_small" and "estimated at" in error["message"]


def test_another_tenants_run_is_a_404_on_every_surface(upstream, no_worker):
    owner, other = make_tenant(), make_tenant()
    research_routes(upstream.base_url)
    run_id = _post(_client(owner.key), "/v1/research/runs", run_body()).json()["id"]
    client = _client(other.key)
    assert client.get(f"/v1/research/runs/{run_id}").status_code == 404
    assert _post(client, f"/v1/research/runs/{run_id}/cancel").status_code == 404
    assert client.get("/v1/research/runs").json()["data"] == []
    assert client.get("/v1/research/runs/not-a-uuid").status_code == 404
    assert ResearchRun.objects.get(pk=run_id).status == "queued"


def test_the_starting_key_cancels_a_queued_run_and_nothing_is_charged(upstream, no_worker):
    t = make_tenant()
    research_routes(upstream.base_url)
    client = _client(t.key)
    run_id = _post(client, "/v1/research/runs", run_body()).json()["id"]
    response = _post(client, f"/v1/research/runs/{run_id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert run_execute(run_id=run_id) == "skipped"
    assert not UsageRecord.objects.filter(researcher_run_id=run_id).exists()
