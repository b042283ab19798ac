"""Money on `/v1/responses` follows the chat rules: 200 concurrent requests never overspend a
small budget, a client leaving mid-stream is charged by the partial-stream policy, a stream
that breaks ends in `response.failed` and is charged for what was delivered, and bad input
is a 400/404 in the Responses error shape that moves no money."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import openai
import pytest
from django.db.models import Sum

from ledger.models import Account, AccountKind, BudgetCounter, Hold, UsageRecord
from ledger.services.budgets import budget_set
from routing.pricing import tokens_estimate
from tests.routing.conftest import make_tenant, one_route, wait_no_pending_holds

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "gpt-4o-mini"


def _post(gateway, key: str, body, **kwargs) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        gateway.url + "/v1/responses",
        content=content,
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
        timeout=30,
        **kwargs,
    )


def _money(org) -> tuple:
    wallet = Account.objects.get(org=org, currency="CREDIT", kind=AccountKind.WALLET)
    return wallet.posted, wallet.held


def test_200_concurrent_responses_never_overspend_a_small_budget(gateway, upstream):
    t = make_tenant()
    one_route(upstream.base_url, price_in="1000", price_out="1000")
    limit = Decimal("0.5")
    budget = budget_set(
        org=t.org, currency="CREDIT", amount=limit, period="total", api_key=t.api_key
    )
    body = {"model": MODEL, "input": "Say hello", "max_output_tokens": 16, "store": False}
    headers = {"authorization": f"Bearer {t.key}"}

    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=200)) as client:

        def call(_):
            return client.post(gateway.url + "/v1/responses", json=body, headers=headers)

        with ThreadPoolExecutor(max_workers=50) as pool:
            answers = list(pool.map(call, range(200)))

    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {200, 402}
    assert statuses.count(200) >= 1 and statuses.count(402) >= 1
    refused = next(a for a in answers if a.status_code == 402).json()["error"]
    assert refused["code"] == "budget_exceeded" and refused["type"] == "billing_error"
    spent = UsageRecord.objects.filter(org=t.org, status="settled").aggregate(s=Sum("cost"))["s"]
    assert spent <= limit
    # 12 prompt + 9 completion tokens at 1000 per 1M each
    assert spent == Decimal("0.021") * statuses.count(200)
    counter = BudgetCounter.objects.get(budget=budget)
    assert counter.spent == spent and counter.reserved == 0
    assert len(upstream.requests) == statuses.count(200)
    assert set(UsageRecord.objects.filter(org=t.org).values_list("endpoint", flat=True)) == {
        "responses"
    }


def test_a_client_leaving_mid_stream_is_charged_only_for_what_was_delivered(
    gateway, upstream, tenant
):
    one_route(upstream.base_url, price_in="1", price_out="1")
    upstream.mode = "slow"  # 400 words, 20 ms apart
    with httpx.stream(
        "POST",
        gateway.url + "/v1/responses",
        headers={"authorization": f"Bearer {tenant.key}"},
        json={"model": MODEL, "input": "Talk a lot", "stream": True},
        timeout=10,
    ) as response:
        deltas = 0
        for line in response.iter_lines():
            if line.startswith("data: ") and '"response.output_text.delta"' in line:
                deltas += 1
            if deltas >= 5:
                break
    wait_no_pending_holds()
    deadline = time.monotonic() + 5
    while upstream.disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.disconnects == 1  # the upstream call was stopped too
    record = UsageRecord.objects.get(org=tenant.org)
    assert record.endpoint == "responses" and record.stream
    assert record.status == "settled" and record.estimated
    assert "client disconnected" in record.error
    low = tokens_estimate(" ".join(f"w{i}" for i in range(5)))
    high = tokens_estimate(" ".join(f"w{i}" for i in range(60)))
    assert low <= record.completion_tokens <= high


def test_a_stream_broken_mid_way_ends_in_response_failed_and_charges_what_was_delivered(
    gateway, upstream, tenant
):
    one_route(upstream.base_url, price_in="1", price_out="1")
    upstream.mode = "cut"  # the upstream drops the connection after three words
    events = []
    with gateway.client(tenant.key).responses.create(
        model=MODEL, input="Say hello", stream=True
    ) as stream:
        events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.failed"
    assert "response.output_text.delta" in kinds and "response.completed" not in kinds
    assert events[-1].response.status == "failed" and events[-1].response.error.message
    wait_no_pending_holds()
    record = UsageRecord.objects.get(org=tenant.org)
    assert record.status == "settled" and record.estimated and record.completion_tokens > 0
    assert "stream broke" in record.error


BAD_INPUTS = [
    ({"model": MODEL, "input": [{"type": "telepathy", "content": "hi"}]}, "input[0].type"),
    ({"model": MODEL, "input": [{"role": "robot", "content": "hi"}]}, "input[0].role"),
    ({"model": MODEL, "input": 42}, "input"),
    ({"model": MODEL, "input": "hi", "tools": {"type": "function"}}, "tools"),
    ({"model": MODEL, "input": "hi", "tools": [{"name": "x"}]}, "tools[0]"),
    ({"model": MODEL, "input": "hi", "tools": [{"type": "function"}]}, "tools[0].name"),
    (
        {
            "model": MODEL,
            "input": "hi",
            "tools": [{"type": "function", "name": "f", "parameters": 3}],
        },
        "tools[0].parameters",
    ),
    (
        {"model": MODEL, "input": "hi", "text": {"format": {"type": "json_schema"}}},
        "text.format",
    ),
    ({"model": MODEL, "input": "hi", "max_output_tokens": "many"}, "max_output_tokens"),
    ({"input": "hi"}, "model"),
]


@pytest.mark.parametrize(("body", "param"), BAD_INPUTS)
def test_bad_input_is_a_400_in_the_responses_error_shape_and_moves_no_money(
    gateway, upstream, body, param
):
    t = make_tenant()
    one_route(upstream.base_url)
    before = _money(t.org)
    answer = _post(gateway, t.key, body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert answer.headers["x-request-id"]
    assert _money(t.org) == before
    assert not UsageRecord.objects.filter(org=t.org).exists()
    assert not Hold.objects.filter(org=t.org).exists()
    assert upstream.requests == []


def test_an_unknown_previous_response_id_is_a_404_that_moves_no_money(gateway, upstream, tenant):
    one_route(upstream.base_url)
    before = _money(tenant.org)
    with pytest.raises(openai.NotFoundError) as err:
        gateway.client(tenant.key).responses.create(
            model=MODEL, input="go on", previous_response_id="resp_doesnotexist"
        )
    assert err.value.body["param"] == "previous_response_id"
    assert err.value.body["code"] == "previous_response_not_found"
    assert _money(tenant.org) == before
    assert not UsageRecord.objects.filter(org=tenant.org).exists()
    assert upstream.requests == []


def test_a_body_that_is_not_json_is_a_400(gateway, upstream, tenant):
    one_route(upstream.base_url)
    answer = _post(gateway, tenant.key, b"{not json")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_json"
    assert not UsageRecord.objects.filter(org=tenant.org).exists()


def test_an_unknown_field_is_tolerated(gateway, upstream, tenant):
    one_route(upstream.base_url)
    answer = _post(
        gateway,
        tenant.key,
        {"model": MODEL, "input": "hi", "brand_new_field": {"x": 1}, "client_metadata": {"a": "b"}},
    )
    assert answer.status_code == 200, answer.text
    assert "brand_new_field" not in json.dumps(upstream.requests[-1]["body"])
