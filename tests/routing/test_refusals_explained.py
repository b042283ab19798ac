"""Refusals that say what to do: the 402 names the limit as the customer does, what is left,
what the request needed and why, and what to change; every refused route is in the story;
refused requests (402, 403, 429) are recorded as failed at zero cost."""

from __future__ import annotations

import re
from decimal import Decimal

import openai
import pytest

from ledger.models import UsageRecord
from ledger.services.budgets import budget_set
from tests.routing.conftest import apply, make_tenant, one_route

pytestmark = pytest.mark.django_db(transaction=True)

MSG = [{"role": "user", "content": "hi"}]


def test_the_sdk_sees_a_402_naming_the_key_what_is_left_and_what_was_needed(gateway, upstream):
    t = make_tenant()
    budget_set(
        org=t.org, currency="RMB", amount=Decimal("0.001"), period="total", api_key=t.api_key
    )
    one_route(upstream.base_url, wallet="RMB", price_in="2", price_out="8")
    with pytest.raises(openai.APIStatusError) as err:
        gateway.client(t.key).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert err.value.status_code == 402
    message = err.value.body["message"]
    assert 'the key "test"' in message  # what the customer calls it
    assert "total RMB (CNY) budget" in message and "counted since" in message
    assert "¥0.001 is left" in message  # what is left
    assert "needed to hold ¥" in message and "output tokens" in message  # what and why
    assert "max_tokens" in message and "raise or remove the key's budget" in message
    assert not re.search(r"budget \d+|\(budget|id=", message)  # no internal ids
    assert upstream.requests == []
    record = UsageRecord.objects.get(org=t.org)
    assert (record.status, record.cost) == ("failed", 0)
    assert record.skipped[0]["reason"] == "budget"


def test_an_empty_wallet_says_how_much_is_available_and_to_top_up(gateway, upstream):
    t = make_tenant(credit="0.00001")
    one_route(upstream.base_url)
    with pytest.raises(openai.APIStatusError) as err:
        gateway.client(t.key).chat.completions.create(
            model="gpt-4o-mini", messages=MSG, max_tokens=1000
        )
    message = err.value.body["message"]
    assert err.value.body["code"] == "insufficient_balance"
    assert "Credit (USD) wallet has $0.00001 available" in message
    assert "top up" in message and "max_tokens" in message


def test_a_refused_wallet_then_the_other_wallet_lists_the_skipped_route(
    gateway, upstream, upstream_b
):
    t = make_tenant(credit="100", rmb="100")
    budget_set(
        org=t.org, currency="RMB", amount=Decimal("0.000001"), period="month", api_key=t.api_key
    )
    apply(
        [
            {"name": "relay-rmb", "base_url": upstream.base_url, "wallet": "RMB"},
            {"name": "official", "base_url": upstream_b.base_url, "wallet": "CREDIT"},
        ],
        [
            {
                "name": "gpt-4o-mini",
                "routes": [
                    {
                        "upstream": "relay-rmb",
                        "model": "gpt-4o-mini",
                        "price": {"input": "1", "output": "1"},
                    },
                    {
                        "upstream": "official",
                        "model": "gpt-4o-mini",
                        "price": {"input": "1", "output": "1"},
                    },
                ],
            }
        ],
    )
    response = gateway.client(t.key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSG
    )
    assert response.headers["x-tokenforge-wallet"] == "CREDIT"
    record = UsageRecord.objects.get(request_id=response.headers["x-request-id"])
    assert record.status == "settled"
    [skipped] = record.skipped
    assert (skipped["upstream"], skipped["wallet"], skipped["reason"]) == (
        "relay-rmb",
        "RMB",
        "budget",
    )
    assert "budget of the key" in skipped["detail"]


def test_a_rate_limited_request_is_recorded_as_failed(gateway, upstream):
    t = make_tenant(rpm_limit=1)
    one_route(upstream.base_url)
    client = gateway.client(t.key)
    client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    statuses = sorted(UsageRecord.objects.filter(org=t.org).values_list("status", flat=True))
    assert statuses == ["failed", "settled"]
    failed = UsageRecord.objects.get(org=t.org, status="failed")
    assert failed.cost == 0 and "Rate limit" in failed.error


def test_a_model_not_allowed_is_recorded_as_failed(gateway, upstream):
    t = make_tenant(allowed_models=["other-model"])
    one_route(upstream.base_url)
    with pytest.raises(openai.PermissionDeniedError):
        gateway.client(t.key).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    failed = UsageRecord.objects.get(org=t.org)
    assert (failed.status, failed.cost, failed.model) == ("failed", 0, "gpt-4o-mini")
