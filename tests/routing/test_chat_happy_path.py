from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from ledger.models import Account, AccountKind, UsageRecord
from tests.routing.conftest import one_route

pytestmark = pytest.mark.django_db(transaction=True)


def _credit(org) -> Account:
    return Account.objects.get(org=org, currency="CREDIT", kind=AccountKind.WALLET)


def test_a_completion_is_charged_exactly_the_reported_usage_at_the_route_price(
    gateway, upstream, tenant
):
    one_route(upstream.base_url, price_in="1.05", price_out="4.20")
    client = gateway.client(tenant.key)

    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    completion = raw.parse()

    assert completion.choices[0].message.content.startswith("Hello from the mock upstream")
    assert completion.model == "gpt-4o-mini"
    # 12 prompt tokens × 1.05 + 9 completion tokens × 4.20, per million
    expected = (Decimal(12) * Decimal("1.05") + Decimal(9) * Decimal("4.20")) / 1_000_000
    assert Decimal(raw.headers["x-tokenforge-cost"]) == expected
    assert raw.headers["x-tokenforge-route"] == "relay-a/gpt-4o-mini"
    assert raw.headers["x-tokenforge-wallet"] == "CREDIT"
    assert raw.headers["x-tokenforge-fallback"] == "false"
    request_id = raw.headers["x-request-id"]
    record = UsageRecord.objects.get(request_id=request_id)
    assert record.cost == expected
    assert (record.prompt_tokens, record.completion_tokens, record.estimated) == (12, 9, False)
    assert record.price_input == Decimal("1.05") and record.price_output == Decimal("4.20")
    assert record.status == "settled" and record.wallet == "CREDIT"
    assert record.upstream == "relay-a" and record.attempts[0]["status"] == "ok"
    assert _credit(tenant.org).posted == Decimal("100") - expected
    # the upstream got its own key, never the client's
    sent = upstream.requests[-1]
    assert sent["headers"]["authorization"] == "Bearer sk-upstream-relay-a"


def test_the_org_price_multiplier_is_applied_and_recorded(gateway, upstream, tenant):
    tenant.org.price_multiplier = Decimal("0.5")
    tenant.org.save()
    one_route(upstream.base_url, price_in="2", price_out="10")
    raw = gateway.client(tenant.key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    record = UsageRecord.objects.get(request_id=raw.headers["x-request-id"])
    assert record.price_multiplier == Decimal("0.5")
    assert record.cost == (Decimal(12 * 2 + 9 * 10) / 1_000_000) * Decimal("0.5")


def test_cached_prompt_tokens_are_charged_at_the_cached_price(gateway, upstream, tenant):
    from tests.routing.conftest import apply

    upstream.cached_tokens = 10
    apply(
        [{"name": "official", "base_url": upstream.base_url}],
        [
            {
                "name": "gpt-4o-mini",
                "routes": [
                    {
                        "upstream": "official",
                        "model": "gpt-4o-mini",
                        "price": {"input": "0.15", "output": "0.60", "cached_input": "0.075"},
                    }
                ],
            }
        ],
    )
    raw = gateway.client(tenant.key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    record = UsageRecord.objects.get(request_id=raw.headers["x-request-id"])
    expected = (
        Decimal(2) * Decimal("0.15") + Decimal(10) * Decimal("0.075") + Decimal(9) * Decimal("0.60")
    ) / 1_000_000
    assert record.cached_tokens == 10 and record.cost == expected


def test_a_stream_passes_usage_only_when_the_client_asked_and_is_charged(gateway, upstream, tenant):
    one_route(upstream.base_url)
    client = gateway.client(tenant.key)

    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the mock upstream, one word at a time."
    assert chunks[-1].usage.prompt_tokens == 12 and chunks[-1].usage.completion_tokens == 9

    plain = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert all(c.usage is None for c in plain)
    # the upstream was asked for usage both times
    assert all(r["body"]["stream_options"]["include_usage"] for r in upstream.requests)
    records = UsageRecord.objects.filter(org=tenant.org, stream=True)
    assert records.count() == 2
    assert all(not r.estimated and r.completion_tokens == 9 for r in records)


def test_streamed_responses_carry_route_headers_and_sse_framing(gateway, upstream, tenant):
    one_route(upstream.base_url)
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {tenant.key}"},
        json={
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "x"}],
            "stream": True,
        },
        timeout=10,
    ) as response:
        body = response.read().decode()
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-tokenforge-route"] == "relay-a/gpt-4o-mini"
    assert "x-tokenforge-cost" not in response.headers
    assert body.rstrip().endswith("data: [DONE]")


def test_embeddings_are_proxied_and_charged(gateway, upstream, tenant):
    one_route(
        upstream.base_url,
        model="text-embedding-3-small",
        upstream_model="text-embedding-3-small",
        price_in="0.02",
        price_out="0",
    )
    raw = gateway.client(tenant.key).embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=["a", "b"]
    )
    result = raw.parse()
    assert len(result.data) == 2
    record = UsageRecord.objects.get(request_id=raw.headers["x-request-id"])
    assert (
        record.endpoint == "embeddings" and record.cost == Decimal(12) * Decimal("0.02") / 1_000_000
    )
