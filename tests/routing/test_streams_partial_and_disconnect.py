from __future__ import annotations

import time
from decimal import Decimal

import httpx
import openai
import pytest

from ledger.models import UsageRecord
from routing.pricing import tokens_estimate
from tests.routing.conftest import apply, one_route, wait_no_pending_holds

pytestmark = pytest.mark.django_db(transaction=True)

MSG = [{"role": "user", "content": "hi"}]


def test_a_stream_failing_before_its_first_content_falls_back(gateway, upstream, tenant):
    apply(
        [
            {"name": "relay-a", "base_url": upstream.base_url},
            {"name": "official", "base_url": upstream.base_url},
        ],
        [
            {
                "name": "gpt-4o-mini",
                "routes": [
                    {
                        "upstream": "relay-a",
                        "model": "fault-503",
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
    stream = gateway.client(tenant.key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSG, stream=True
    )
    assert stream.headers["x-tokenforge-route"] == "official/gpt-4o-mini"
    assert stream.headers["x-tokenforge-fallback"] == "true"
    list(stream.parse())


def test_a_stream_cut_mid_way_charges_only_what_was_delivered_estimated(gateway, upstream, tenant):
    one_route(upstream.base_url, price_in="1", price_out="1")
    upstream.mode = "cut"  # three words, then the connection drops
    client = gateway.client(tenant.key)
    received = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True):
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")
    wait_no_pending_holds()
    record = UsageRecord.objects.get(org=tenant.org)
    delivered = "".join(received)
    assert delivered == "Hello from the"
    assert record.status == "settled" and record.estimated
    assert record.completion_tokens == tokens_estimate(delivered)
    assert "stream broke" in record.error
    assert record.cost == Decimal(record.prompt_tokens + record.completion_tokens) / 1_000_000


def test_a_stream_without_usage_is_estimated_from_the_delivered_text(gateway, upstream, tenant):
    one_route(upstream.base_url, price_in="1", price_out="1")
    upstream.mode = "no_usage"
    chunks = list(
        gateway.client(tenant.key).chat.completions.create(
            model="gpt-4o-mini", messages=MSG, stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    record = UsageRecord.objects.get(org=tenant.org)
    assert record.estimated and record.completion_tokens == tokens_estimate(text)
    assert record.error == ""


def test_a_non_streamed_answer_without_usage_is_estimated(gateway, upstream, tenant):
    one_route(upstream.base_url)
    upstream.mode = "no_usage"
    gateway.client(tenant.key).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert UsageRecord.objects.get(org=tenant.org).estimated


def test_a_client_disconnect_stops_the_upstream_and_charges_only_what_was_delivered(
    gateway, upstream, tenant
):
    one_route(upstream.base_url, price_in="1", price_out="1")
    upstream.mode = "slow"  # 400 words, 20 ms apart
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {tenant.key}"},
        json={"model": "gpt-4o-mini", "messages": MSG, "stream": True},
        timeout=10,
    ) as response:
        lines = []
        for line in response.iter_lines():
            if line.startswith("data: "):
                lines.append(line)
            if len(lines) >= 6:
                break
    wait_no_pending_holds()
    deadline = time.monotonic() + 5
    while upstream.disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.disconnects == 1  # the upstream call was stopped
    assert upstream.chunks_sent < 100
    record = UsageRecord.objects.get(org=tenant.org)
    assert record.status == "settled" and record.estimated
    assert "client disconnected" in record.error
    # at least the words we read, at most the few more in flight; far from all 400
    low = tokens_estimate(" ".join(f"w{i}" for i in range(5)))
    high = tokens_estimate(" ".join(f"w{i}" for i in range(60)))
    assert low <= record.completion_tokens <= high


def test_a_stream_that_failed_before_delivering_anything_is_not_charged(gateway, upstream, tenant):
    one_route(upstream.base_url)
    upstream.mode = "500"
    with pytest.raises(openai.APIStatusError):
        list(
            gateway.client(tenant.key).chat.completions.create(
                model="gpt-4o-mini", messages=MSG, stream=True
            )
        )
    record = UsageRecord.objects.get(org=tenant.org)
    assert record.status == "failed" and record.cost == 0
