"""The gateway paths the performance work touched: settlement right after the response, a
client leaving a non-streamed request, a refused hold after a failed route on the same wallet,
a feature one route lacks, and holds sized from a small output limit."""

from __future__ import annotations

import time
from decimal import Decimal

import httpx
import openai
import pytest
from django.conf import settings

from ledger.models import Account, AccountKind, Hold, HoldStatus, UsageRecord
from routing.pricing import Prices, hold_amount
from routing.request_bounds import prompt_tokens_upper
from tests.routing.conftest import (
    _start_gateway,
    _stop_gateway,
    apply,
    make_tenant,
    one_route,
    wait_no_pending_holds,
)

pytestmark = pytest.mark.django_db(transaction=True)

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def settle_after_gateway(django_db_setup, django_db_blocker):
    """A gateway as `make serve` runs it: the capture commits right after the response."""
    gw = _start_gateway(settings.REDIS_URL, ROUTING_SETTLE_AFTER_RESPONSE="true")
    yield gw
    _stop_gateway(gw)


def _wallet(org, currency="CREDIT") -> Account:
    return Account.objects.get(org=org, currency=currency, kind=AccountKind.WALLET)


def test_settling_after_the_response_still_charges_every_request_exactly_once(
    settle_after_gateway, upstream
):
    t = make_tenant(credit="10", rmb="0")
    one_route(upstream.base_url)
    client = settle_after_gateway.client(t.key)
    costs = []
    for _ in range(5):
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
        costs.append(Decimal(raw.headers["x-tokenforge-cost"]))
    wait_no_pending_holds()
    records = UsageRecord.objects.filter(org=t.org)
    assert records.count() == 5
    assert all(r.status == "settled" and r.transaction_id for r in records)
    assert sum(r.cost for r in records) == sum(costs) > 0
    wallet = _wallet(t.org)
    assert (wallet.posted, wallet.held) == (Decimal("10") - sum(costs), Decimal("0"))


def test_a_client_leaving_a_non_streamed_request_releases_its_hold(gateway, upstream, tenant):
    one_route(upstream.base_url, model="gpt-4o-mini")
    upstream.mode = "hang"  # the upstream never answers within the client's patience
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            gateway.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {tenant.key}"},
            json={"model": "gpt-4o-mini", "messages": MSG},
            timeout=httpx.Timeout(5.0, read=1.0),
        )
    deadline = time.monotonic() + 10
    while not UsageRecord.objects.filter(org=tenant.org).exists():
        assert time.monotonic() < deadline, "no usage record for the abandoned request"
        time.sleep(0.05)
    wait_no_pending_holds()
    record = UsageRecord.objects.get(org=tenant.org)
    assert record.status == "failed" and record.cost == 0
    assert Hold.objects.get(pk=record.hold_id).status == HoldStatus.VOIDED
    assert _wallet(tenant.org).held == 0


def test_a_failed_route_then_a_refused_hold_on_the_same_wallet_still_records_the_attempts(
    gateway, upstream
):
    """The first route's hold is released so the second can use the money; when the second
    route's (pricier) hold is refused, the failed request keeps its record and the upstream's
    error, not a silent loss of the attempts."""
    t = make_tenant(credit="0.05", rmb="0")
    apply(
        [
            {"name": "relay-a", "base_url": upstream.base_url, "wallet": "CREDIT"},
            {"name": "official", "base_url": upstream.base_url, "wallet": "CREDIT"},
        ],
        [
            {
                "name": "gpt-4o-mini",
                "routes": [
                    {
                        "upstream": "relay-a",
                        "model": "fault-500",
                        "price": {"input": "1", "output": "1"},
                    },
                    {
                        "upstream": "official",
                        "model": "gpt-4o-mini",
                        "price": {"input": "10000", "output": "10000"},
                    },
                ],
            }
        ],
    )
    with pytest.raises(openai.APIStatusError) as err:
        gateway.client(t.key).chat.completions.create(
            model="gpt-4o-mini", messages=MSG, max_tokens=16
        )
    assert err.value.status_code == 502
    record = UsageRecord.objects.get(org=t.org)
    assert record.status == "failed" and record.cost == 0
    assert [a["upstream"] for a in record.attempts] == ["relay-a", "relay-a"]
    assert {a["status"] for a in record.attempts} == {"500"}
    wallet = _wallet(t.org)
    assert (wallet.posted, wallet.held) == (Decimal("0.05"), Decimal("0"))


def test_a_route_lacking_a_feature_falls_back_to_one_that_has_it(gateway, upstream, tenant):
    apply(
        [
            {"name": "claude", "provider": "anthropic", "base_url": upstream.base_url},
            {"name": "relay-a", "base_url": upstream.base_url},
        ],
        [
            {
                "name": "embed-any",
                "routes": [
                    {"upstream": "claude", "model": "x", "price": {"input": "1", "output": "0"}},
                    {
                        "upstream": "relay-a",
                        "model": "text-embedding-3-small",
                        "price": {"input": "1", "output": "0"},
                    },
                ],
            },
            {
                "name": "embed-none",
                "routes": [
                    {"upstream": "claude", "model": "x", "price": {"input": "1", "output": "0"}}
                ],
            },
        ],
    )
    client = gateway.client(tenant.key)
    raw = client.embeddings.with_raw_response.create(model="embed-any", input="hello")
    assert raw.headers["x-tokenforge-route"] == "relay-a/text-embedding-3-small"
    assert raw.headers["x-tokenforge-fallback"] == "true"
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="embed-none", input="hello")
    assert err.value.body["code"] == "unsupported"
    wait_no_pending_holds()
    statuses = sorted(r.status for r in UsageRecord.objects.filter(org=tenant.org))
    assert statuses == ["failed", "settled"]


def test_a_small_output_limit_sizes_the_hold(gateway, upstream, tenant):
    apply(
        [{"name": "relay-a", "base_url": upstream.base_url}],
        [
            {
                "name": "tiny",
                "max_output_tokens": 512,
                "routes": [
                    {
                        "upstream": "relay-a",
                        "model": "gpt-4o-mini",
                        "price": {"input": "1", "output": "2"},
                    }
                ],
            }
        ],
    )
    client = gateway.client(tenant.key)
    client.chat.completions.create(model="tiny", messages=MSG)  # no max_tokens: the limit
    client.chat.completions.create(model="tiny", messages=MSG, max_tokens=100_000)  # capped
    client.chat.completions.create(model="tiny", messages=MSG, max_tokens=100)  # smaller
    wait_no_pending_holds()
    prices = Prices(input=Decimal("1"), output=Decimal("2"), cached_input=None)
    held = [
        r.hold.amount for r in UsageRecord.objects.filter(org=tenant.org).order_by("created_at")
    ]

    def expected(body, completion_upper):
        return hold_amount(
            prices=prices,
            multiplier=Decimal("1"),
            prompt_upper=prompt_tokens_upper(body),
            completion_upper=completion_upper,
        )

    body = {"model": "tiny", "messages": MSG}
    assert held == [
        expected(body, 512),
        expected({**body, "max_tokens": 100_000}, 512),
        expected({**body, "max_tokens": 100}, 100),
    ]
