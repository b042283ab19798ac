from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from ledger.services.budgets import budget_set
from tests.routing.conftest import apply, make_tenant, one_route

pytestmark = pytest.mark.django_db(transaction=True)

MSG = [{"role": "user", "content": "hi"}]


def _get(gateway, key, path):
    return httpx.get(gateway.url + path, headers={"authorization": f"Bearer {key}"}, timeout=10)


def test_generation_returns_the_usage_record_in_the_contract_shape(gateway, upstream, tenant):
    one_route(upstream.base_url)
    raw = gateway.client(tenant.key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSG
    )
    request_id = raw.headers["x-request-id"]
    data = _get(gateway, tenant.key, f"/v1/generation?id={request_id}").json()
    for field in (
        "id",
        "kind",
        "project",
        "api_key",
        "model",
        "route",
        "attempts",
        "fallback",
        "wallet",
        "usage",
        "cost",
        "status",
        "stream",
        "researcher_run",
        "created_at",
    ):
        assert field in data
    assert data["id"] == request_id and data["kind"] == "api"
    assert data["project"] == tenant.project.name and data["api_key"] == tenant.api_key.prefix
    assert data["route"] == {"upstream": "relay-a", "model": "gpt-4o-mini"}
    assert set(data["attempts"][0]) == {"upstream", "model", "status", "error", "latency_ms"}
    assert data["usage"]["total_tokens"] == 21 and data["wallet"] == "CREDIT"
    assert Decimal(data["cost"]) == Decimal(raw.headers["x-tokenforge-cost"])
    assert data["fallback"] is False and data["stream"] is False and data["researcher_run"] is None


def test_another_organizations_generation_is_not_found(gateway, upstream, tenant):
    one_route(upstream.base_url)
    raw = gateway.client(tenant.key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSG
    )
    stranger = make_tenant()
    response = _get(gateway, stranger.key, f"/v1/generation?id={raw.headers['x-request-id']}")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert _get(gateway, stranger.key, "/v1/generation").status_code == 400


def test_key_describes_limits_and_budgets(gateway, upstream):
    t = make_tenant(allowed_models=["gpt-4o-mini"], rpm_limit=60, tpm_limit=1000)
    budget_set(org=t.org, currency="CREDIT", amount=Decimal("5"), period="month", api_key=t.api_key)
    one_route(upstream.base_url)
    gateway.client(t.key).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    data = _get(gateway, t.key, "/v1/key").json()
    assert data["name"] == "test" and data["project"] == t.project.name
    assert data["allowed_models"] == ["gpt-4o-mini"]
    assert data["rate_limits"]["rpm"] == 60 and data["rate_limits"]["tpm"] == 1000
    (budget,) = data["budgets"]
    assert (
        budget["scope"] == "key" and budget["period"] == "month" and budget["currency"] == "CREDIT"
    )
    spent = (Decimal(12) * Decimal("1.05") + Decimal(9) * Decimal("4.20")) / 1_000_000
    assert Decimal(budget["limit"]) == 5 and Decimal(budget["spent"]) == spent
    assert Decimal(budget["held"]) == 0 and Decimal(budget["remaining"]) == 5 - spent


def test_models_lists_only_what_the_key_may_use(gateway, upstream):
    apply(
        [
            {"name": "relay-a", "base_url": upstream.base_url, "wallet": "RMB"},
            {"name": "official", "base_url": upstream.base_url, "wallet": "CREDIT"},
        ],
        [
            {
                "name": "cheap",
                "routes": [
                    {"upstream": "relay-a", "model": "x", "price": {"input": "1", "output": "1"}}
                ],
            },
            {
                "name": "gpt-4o-mini",
                "routes": [
                    {"upstream": "official", "model": "x", "price": {"input": "1", "output": "1"}}
                ],
            },
            {
                "name": "o3",
                "routes": [
                    {"upstream": "official", "model": "o3", "price": {"input": "1", "output": "1"}}
                ],
            },
        ],
    )
    everything = make_tenant()
    data = _get(gateway, everything.key, "/v1/models").json()
    assert data["object"] == "list"
    assert [m["id"] for m in data["data"]] == ["cheap", "gpt-4o-mini", "o3"]
    assert data["data"][0]["object"] == "model"
    limited = make_tenant(allowed_models=["gpt-4o-mini", "cheap"], allowed_wallets=["CREDIT"])
    assert [m["id"] for m in _get(gateway, limited.key, "/v1/models").json()["data"]] == [
        "gpt-4o-mini"
    ]
    models = gateway.client(everything.key).models.list()
    assert {m.id for m in models} == {"cheap", "gpt-4o-mini", "o3"}
