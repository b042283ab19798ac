from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import openai
import pytest
from django.db.models import Sum

from ledger.models import BudgetCounter, UsageRecord
from ledger.services.budgets import budget_set
from tests.routing.conftest import make_tenant, one_route

pytestmark = pytest.mark.django_db(transaction=True)

MSG = [{"role": "user", "content": "hi"}]


def test_an_empty_wallet_answers_402_before_the_upstream_is_called(gateway, upstream):
    t = make_tenant(credit="0", rmb="0")
    one_route(upstream.base_url)
    with pytest.raises(openai.APIStatusError) as err:
        gateway.client(t.key).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert err.value.status_code == 402
    assert err.value.body["code"] == "insufficient_balance"
    assert upstream.requests == []
    record = UsageRecord.objects.get(org=t.org)  # refused, recorded at zero cost
    assert (record.status, record.cost) == ("failed", 0)


def test_an_exhausted_key_budget_answers_402_naming_the_budget(gateway, upstream):
    t = make_tenant()
    budget_set(
        org=t.org, currency="CREDIT", amount=Decimal("0.000001"), period="month", api_key=t.api_key
    )
    one_route(upstream.base_url)
    with pytest.raises(openai.APIStatusError) as err:
        gateway.client(t.key).chat.completions.create(
            model="gpt-4o-mini", messages=MSG, max_tokens=100
        )
    assert err.value.status_code == 402
    assert err.value.body["code"] == "budget_exceeded"
    assert 'monthly Credit (USD) budget of the key "test"' in err.value.body["message"]
    assert upstream.requests == []


def test_a_project_budget_is_named_too(gateway, upstream):
    t = make_tenant()
    budget_set(org=t.org, currency="CREDIT", amount=Decimal("0"), period="day", project=t.project)
    one_route(upstream.base_url)
    with pytest.raises(openai.APIStatusError) as err:
        gateway.client(t.key).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert (
        f'daily Credit (USD) budget of the project "{t.project.name}"' in err.value.body["message"]
    )


def test_200_concurrent_requests_never_overspend_a_small_budget(gateway, upstream):
    t = make_tenant()
    one_route(upstream.base_url, price_in="1000", price_out="1000")
    # each request holds (prompt upper + 10) tokens × 1000/1M ≈ 0.03 and costs 0.021
    limit = Decimal("0.5")
    budget = budget_set(
        org=t.org, currency="CREDIT", amount=limit, period="total", api_key=t.api_key
    )
    body = {"model": "gpt-4o-mini", "messages": MSG, "max_tokens": 10}
    headers = {"authorization": f"Bearer {t.key}"}

    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=200)) as client:

        def call(_):
            return client.post(
                gateway.url + "/v1/chat/completions", json=body, headers=headers
            ).status_code

        with ThreadPoolExecutor(max_workers=50) as pool:
            statuses = list(pool.map(call, range(200)))

    assert set(statuses) <= {200, 402}
    assert statuses.count(200) >= 1 and statuses.count(402) >= 1
    spent = UsageRecord.objects.filter(org=t.org, status="settled").aggregate(s=Sum("cost"))["s"]
    assert spent <= limit
    assert spent == Decimal("0.021") * statuses.count(200)
    counter = BudgetCounter.objects.get(budget=budget)
    assert counter.spent == spent and counter.reserved == 0
    assert len(upstream.requests) == statuses.count(200)


def test_a_failed_route_then_an_unpayable_wallet_still_leaves_a_failed_record(gateway, upstream):
    from tests.routing.conftest import apply

    t = make_tenant(credit="10", rmb="0")
    apply(
        [
            {"name": "official", "base_url": upstream.base_url, "wallet": "CREDIT"},
            {"name": "relay-a", "base_url": upstream.base_url, "wallet": "RMB"},
        ],
        [
            {
                "name": "gpt-4o-mini",
                "routes": [
                    {
                        "upstream": "official",
                        "model": "fault-503",
                        "price": {"input": "1", "output": "1"},
                    },
                    {
                        "upstream": "relay-a",
                        "model": "gpt-4o-mini",
                        "price": {"input": "1", "output": "1"},
                    },
                ],
            }
        ],
    )
    with pytest.raises(openai.APIStatusError) as err:
        gateway.client(t.key).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert err.value.status_code == 503
    record = UsageRecord.objects.get(org=t.org)
    assert record.status == "failed" and record.cost == 0 and len(record.attempts) == 2
