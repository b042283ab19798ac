"""Redis down (extends tests/routing/test_redis_down.py): rate limits and cooldowns degrade to
in-process state, and charging is untouched: each request is charged exactly once, at its
reported usage, even when a route fails and the request falls back."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledger.models import Account, AccountKind, UsageRecord
from tests.routing.conftest import apply, make_tenant, one_route

pytestmark = pytest.mark.django_db(transaction=True)

MSG = [{"role": "user", "content": "hi"}]
CHAT = Decimal(12 + 9) / 1_000_000  # the mock reports 12 prompt + 9 completion tokens, price 1/1
EMBED = Decimal(12) / 1_000_000


def _credit(org) -> Decimal:
    return Account.objects.get(org=org, currency="CREDIT", kind=AccountKind.WALLET).posted


def test_with_redis_down_every_request_is_charged_exactly_once(gateway_without_redis, upstream):
    one_route(upstream.base_url, price_in="1", price_out="1")
    t = make_tenant()
    before = _credit(t.org)
    client = gateway_without_redis.client(t.key)
    ids = []
    for _ in range(5):
        ids.append(
            client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
        )
        stream = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MSG, stream=True
        )
        list(stream.parse())
        ids.append(stream)
        ids.append(client.embeddings.with_raw_response.create(model="gpt-4o-mini", input="hi"))
    request_ids = [r.headers["x-request-id"] for r in ids]
    records = UsageRecord.objects.filter(org=t.org)
    assert sorted(r.request_id for r in records) == sorted(request_ids)  # once each, none missing
    assert all(r.status == "settled" and not r.estimated for r in records)
    assert before - _credit(t.org) == 10 * CHAT + 5 * EMBED


def test_with_redis_down_a_fallback_is_charged_once_on_the_route_that_answered(
    gateway_without_redis, upstream, upstream_b
):
    apply(
        [
            {"name": "relay-a", "base_url": upstream.base_url},
            {"name": "official", "base_url": upstream_b.base_url},
        ],
        [
            {
                "name": "gpt-4o-mini",
                "routes": [
                    {"upstream": "relay-a", "model": "m", "price": {"input": "1", "output": "1"}},
                    {"upstream": "official", "model": "m", "price": {"input": "1", "output": "1"}},
                ],
            }
        ],
    )
    upstream.mode = "500"
    t = make_tenant()
    before = _credit(t.org)
    client = gateway_without_redis.client(t.key)
    for _ in range(4):
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
        assert raw.headers["x-tokenforge-route"] == "official/m"
    records = list(UsageRecord.objects.filter(org=t.org))
    assert len(records) == 4
    assert all(r.status == "settled" and r.upstream == "official" for r in records)
    assert before - _credit(t.org) == 4 * CHAT
    assert len(upstream_b.requests) == 4
