"""Issue 19 (low): usage an upstream reports is clamped to what is possible, recorded as an
anomaly, and the request always settles (real gateway, mock reporting impossible usage)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledger.models import Hold, HoldStatus, UsageRecord
from routing.pricing import Prices
from routing.providers.base import Usage
from routing.usage_guard import usage_clamp
from tests.routing.conftest import make_tenant, one_route, wait_no_pending_holds

MSG = [{"role": "user", "content": "hi"}]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("prompt", "completion"),
    [(-1_000_000, 9), (10**12, 9), (12, -5), (12, 10**12), (10**12, 10**12)],
)
@pytest.mark.parametrize("stream", [False, True])
def test_impossible_usage_is_clamped_recorded_and_settled(
    gateway, upstream, prompt, completion, stream
):
    one_route(upstream.base_url)  # 1.05 / 4.20 per 1M tokens
    upstream.prompt_tokens, upstream.completion_tokens = prompt, completion
    t = make_tenant()
    client = gateway.client(t.key)
    if stream:
        chunks = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MSG,
            max_tokens=50,
            stream=True,
            stream_options={"include_usage": True},
        )
        request_id = chunks.response.headers["x-request-id"]
        list(chunks)
    else:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MSG, max_tokens=50
        )
        request_id = raw.headers["x-request-id"]
        cost = Decimal(raw.headers["x-tokenforge-cost"])
        assert cost >= 0
    wait_no_pending_holds()
    record = UsageRecord.objects.get(request_id=request_id)
    assert record.status == "settled"
    slack = 1_000_000  # ROUTING_USAGE_SLACK_TOKENS
    assert 0 <= record.prompt_tokens <= slack + 100
    assert 0 <= record.completion_tokens <= slack + 50
    assert record.prompt_tokens + record.completion_tokens <= slack + 150
    assert record.cost >= 0
    hold = Hold.objects.get(usage=record)
    assert hold.status == HoldStatus.CAPTURED
    # Bounded: at most the hold plus the slack's worth at the dearer price.
    assert record.cost <= hold.amount + Decimal(slack) * Decimal("4.20") / 1_000_000
    # Next to it the ledger may note {"kind": "cost_above_hold"} (the slack is above the hold).
    assert {a["kind"] for a in record.anomalies} <= {"usage_clamped", "cost_above_hold"}
    clamped = [a for a in record.anomalies if a["kind"] == "usage_clamped"]
    assert clamped
    fields = {a["field"] for a in clamped}
    if prompt < 0 or prompt > 10**6:
        assert "prompt_tokens" in fields
    if completion < 0 or completion > 50:
        assert "completion_tokens" in fields


def test_plausible_usage_is_left_alone():
    usage = Usage(prompt_tokens=100, completion_tokens=40, cached_tokens=20)
    same = usage_clamp(
        usage=usage, prompt_upper=120, completion_upper=50, request_id="r", upstream="u"
    )
    assert same is usage and not same.anomalies


def test_clamped_usage_never_prices_above_the_bound():
    usage = usage_clamp(
        usage=Usage(prompt_tokens=10**12, completion_tokens=10**12, cached_tokens=-3),
        prompt_upper=100,
        completion_upper=50,
        request_id="r",
        upstream="u",
    )
    # The total stays within what the hold allowed plus the slack (1,000,000 tokens).
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (
        1_000_100,
        50,
        0,
    )
    assert len(usage.anomalies) == 3
    assert Prices(input=Decimal(1), output=Decimal(1)).input == 1


@pytest.mark.django_db(transaction=True)
def test_operators_find_clamped_requests_in_the_admin(gateway, upstream, admin_client):
    one_route(upstream.base_url)
    upstream.prompt_tokens = -1_000_000
    t = make_tenant()
    raw = gateway.client(t.key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSG
    )
    wait_no_pending_holds()
    upstream.prompt_tokens = 12
    plain = gateway.client(t.key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSG
    )
    wait_no_pending_holds()
    page = admin_client.get("/admin/ledger/usagerecord/?anomalies=yes").content.decode()
    assert raw.headers["x-request-id"] in page
    assert plain.headers["x-request-id"] not in page
