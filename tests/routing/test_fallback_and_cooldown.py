from __future__ import annotations

from decimal import Decimal

import openai
import pytest

from ledger.models import Account, AccountKind, UsageRecord
from routing.models import Upstream
from tests.mocks.openai_upstream import dead_base_url
from tests.routing.conftest import apply, make_tenant

pytestmark = pytest.mark.django_db(transaction=True)

MSG = [{"role": "user", "content": "hi"}]


def _two_routes(
    first_url: str,
    second_url: str,
    *,
    first_model="gpt-4o-mini",
    first_wallet="CREDIT",
    second_wallet="CREDIT",
    timeout=5,
):
    apply(
        [
            {"name": "relay-a", "base_url": first_url, "wallet": first_wallet, "timeout": timeout},
            {"name": "official", "base_url": second_url, "wallet": second_wallet},
        ],
        [
            {
                "name": "gpt-4o-mini",
                "routes": [
                    {
                        "upstream": "relay-a",
                        "model": first_model,
                        "price": {"input": "1.05", "output": "4.20"},
                    },
                    {
                        "upstream": "official",
                        "model": "gpt-4o-mini",
                        "price": {"input": "0.15", "output": "0.60"},
                    },
                ],
            }
        ],
    )


@pytest.mark.parametrize("fault", ["500", "503", "429", "malformed", "cut"])
def test_a_failing_first_route_falls_back_to_the_next_and_records_every_attempt(
    gateway, upstream, tenant, fault
):
    _two_routes(upstream.base_url, upstream.base_url, first_model=f"fault-{fault}")
    raw = gateway.client(tenant.key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSG
    )
    assert raw.headers["x-tokenforge-route"] == "official/gpt-4o-mini"
    assert raw.headers["x-tokenforge-fallback"] == "true"
    record = UsageRecord.objects.get(request_id=raw.headers["x-request-id"])
    assert record.fallback and record.upstream == "official"
    # one retry on the failing route, then the fallback
    assert [a["upstream"] for a in record.attempts] == ["relay-a", "relay-a", "official"]
    assert record.attempts[-1]["status"] == "ok" and record.attempts[0]["error"]
    assert record.cost == (Decimal(12) * Decimal("0.15") + Decimal(9) * Decimal("0.60")) / 1_000_000


def test_a_refused_connection_and_a_timeout_fall_back(gateway, upstream, tenant):
    _two_routes(dead_base_url(), upstream.base_url)
    raw = gateway.client(tenant.key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSG
    )
    assert raw.headers["x-tokenforge-route"] == "official/gpt-4o-mini"

    upstream.hang_seconds = 3
    _two_routes(upstream.base_url, upstream.base_url, first_model="fault-hang", timeout=1)
    raw = gateway.client(tenant.key, timeout=20).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSG
    )
    record = UsageRecord.objects.get(request_id=raw.headers["x-request-id"])
    assert record.attempts[0]["error"] == "upstream timed out"
    assert record.upstream == "official"


def test_fallback_across_wallets_moves_the_hold_from_rmb_to_credit(gateway, upstream):
    t = make_tenant(credit="10", rmb="10", allowed_wallets=["RMB", "CREDIT"])
    _two_routes(upstream.base_url, upstream.base_url, first_model="fault-503", first_wallet="RMB")
    raw = gateway.client(t.key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSG
    )
    assert raw.headers["x-tokenforge-wallet"] == "CREDIT"
    rmb = Account.objects.get(org=t.org, currency="RMB", kind=AccountKind.WALLET)
    assert rmb.posted == Decimal("10") and rmb.held == Decimal("0")
    record = UsageRecord.objects.get(request_id=raw.headers["x-request-id"])
    assert record.wallet == "CREDIT" and record.fallback


def test_the_key_wallet_order_decides_the_route_order(gateway, upstream):
    t = make_tenant(allowed_wallets=["CREDIT", "RMB"])
    _two_routes(upstream.base_url, upstream.base_url, first_wallet="RMB")
    raw = gateway.client(t.key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSG
    )
    assert raw.headers["x-tokenforge-wallet"] == "CREDIT"
    only_rmb = make_tenant(allowed_wallets=["RMB"])
    raw = gateway.client(only_rmb.key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSG
    )
    assert raw.headers["x-tokenforge-route"] == "relay-a/gpt-4o-mini"


def test_an_empty_wallet_is_skipped_for_the_next_wallet(gateway, upstream):
    t = make_tenant(credit="10", rmb="0", allowed_wallets=["RMB", "CREDIT"])
    _two_routes(upstream.base_url, upstream.base_url, first_wallet="RMB")
    raw = gateway.client(t.key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSG
    )
    assert raw.headers["x-tokenforge-wallet"] == "CREDIT"


def test_when_every_route_fails_the_client_gets_502_and_nothing_is_charged(
    gateway, upstream, tenant
):
    upstream.mode = "500"
    _two_routes(upstream.base_url, upstream.base_url)
    with pytest.raises(openai.InternalServerError) as err:
        gateway.client(tenant.key).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert err.value.status_code == 502
    assert err.value.body["code"] == "upstream_error"
    record = UsageRecord.objects.get(org=tenant.org)
    assert record.status == "failed" and record.cost == 0 and len(record.attempts) == 4
    credit = Account.objects.get(org=tenant.org, currency="CREDIT", kind=AccountKind.WALLET)
    assert credit.posted == Decimal("100")


def test_all_routes_timing_out_answer_504(gateway, upstream, tenant):
    upstream.mode = "hang"
    upstream.hang_seconds = 3
    apply(
        [{"name": "relay-a", "base_url": upstream.base_url, "timeout": 1}],
        [
            {
                "name": "m",
                "routes": [
                    {"upstream": "relay-a", "model": "m", "price": {"input": "1", "output": "1"}}
                ],
            }
        ],
    )
    with pytest.raises(openai.APIStatusError) as err:
        gateway.client(tenant.key, timeout=20).chat.completions.create(model="m", messages=MSG)
    assert err.value.status_code == 504


def test_a_client_error_from_the_upstream_is_returned_as_is_and_not_retried(
    gateway, upstream, tenant
):
    _two_routes(upstream.base_url, upstream.base_url, first_model="fault-400")
    with pytest.raises(openai.BadRequestError) as err:
        gateway.client(tenant.key).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert err.value.body["message"] == "mock 400"
    assert len(upstream.requests) == 1


def test_repeated_failures_cool_a_route_down_and_it_is_skipped(gateway, upstream, tenant):
    _two_routes(upstream.base_url, upstream.base_url, first_model="fault-500")
    client = gateway.client(tenant.key)
    client.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # 2 failures
    client.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # 3rd failure: cooled down
    before = len(upstream.requests)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
    assert len(upstream.requests) == before + 1  # straight to the second route
    assert upstream.requests[-1]["body"]["model"] == "gpt-4o-mini"
    record = UsageRecord.objects.get(request_id=raw.headers["x-request-id"])
    assert [a["upstream"] for a in record.attempts] == ["official"]


@pytest.mark.parametrize("fault", ["revoked", "insufficient_quota"])
def test_an_auth_or_quota_error_confirmed_by_a_probe_disables_the_upstream_at_once(
    gateway, upstream, tenant, fault
):
    if fault == "revoked":  # relay-a's key is refused on every call, the gateway's probe too
        upstream.valid_keys = {"sk-upstream-official"}
        _two_routes(upstream.base_url, upstream.base_url)
    else:  # the one-token probe on the route's model meets the same quota answer
        _two_routes(upstream.base_url, upstream.base_url, first_model=f"fault-{fault}")
    raw = gateway.client(tenant.key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSG
    )
    assert raw.headers["x-tokenforge-route"] == "official/gpt-4o-mini"
    relay = Upstream.objects.get(name="relay-a")
    assert not relay.enabled and relay.disabled_reason and relay.disabled_at
    record = UsageRecord.objects.get(request_id=raw.headers["x-request-id"])
    assert len(record.attempts) == 2  # not retried
    # operators see the upstream's words; the customer's record only a generic reason
    assert "mock" in relay.disabled_reason or "quota" in relay.disabled_reason
    assert "mock" not in record.attempts[0]["error"] and "disabled" in record.attempts[0]["error"]
    before = len(upstream.requests)
    gateway.client(tenant.key).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert len(upstream.requests) == before + 1


def test_when_every_route_is_cooling_down_one_half_open_probe_goes_through_and_reopens_it(
    gateway, upstream, tenant
):
    apply(
        [{"name": "relay-a", "base_url": upstream.base_url}],
        [
            {
                "name": "m",
                "routes": [
                    {
                        "upstream": "relay-a",
                        "model": "fault-500",
                        "price": {"input": "1", "output": "1"},
                    }
                ],
            }
        ],
    )
    client = gateway.client(tenant.key)
    for _ in range(2):  # 2 + 2 attempts: the third failure cools the route down
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=MSG)
    # No closed route is left: one request probes the route half-open (once, no retry); it
    # still fails, so the breaker re-opens for a full cooldown.
    before = len(upstream.requests)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=MSG)
    assert len(upstream.requests) == before + 1
    # ... and while it cools down with its probe slot taken, nobody reaches the upstream.
    before = len(upstream.requests)
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model="m", messages=MSG)
    assert err.value.status_code == 503
    assert err.value.body["code"] == "upstreams_cooling_down"
    assert 1 <= int(err.value.response.headers["retry-after"]) <= 30
    assert len(upstream.requests) == before
