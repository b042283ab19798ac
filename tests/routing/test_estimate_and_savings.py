"""The cost estimator (API and page) and "saved by routing" on real requests.

Routes of gpt-4o-mini: an RMB relay first (2 / 8 CNY per 1M), the official Credit upstream
second (0.15 / 0.60 USD per 1M); the organization's multiplier is 1.5.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from accounts.models import Role
from ledger.models import UsageRecord
from ledger.selectors_savings import savings_get, savings_total
from tests.factories import MembershipFactory
from tests.routing.conftest import apply

pytestmark = pytest.mark.django_db(transaction=True)


def _routes(relay_url: str, official_url: str) -> None:
    apply(
        [
            {"name": "cny-relay", "base_url": relay_url, "wallet": "RMB"},
            {"name": "openai-official", "base_url": official_url, "wallet": "CREDIT"},
        ],
        [
            {
                "name": "gpt-4o-mini",
                "routes": [
                    {
                        "upstream": "cny-relay",
                        "model": "gpt-4o-mini",
                        "price": {"input": "2", "output": "8"},
                    },
                    {
                        "upstream": "openai-official",
                        "model": "gpt-4o-mini",
                        "price": {"input": "0.15", "output": "0.60"},
                    },
                ],
            }
        ],
    )


@pytest.fixture
def owner(tenant):
    tenant.org.price_multiplier = Decimal("1.5")
    tenant.org.save()
    member = MembershipFactory(org=tenant.org, role=Role.OWNER)
    client = APIClient()
    client.force_authenticate(member.user)
    return client


def test_the_estimator_prices_every_route_with_the_formula_cheapest_first(
    owner, upstream, upstream_b
):
    _routes(upstream.base_url, upstream_b.base_url)
    body = {
        "model": "gpt-4o-mini",
        "requests_per_day": 1000,
        "input_tokens": 1200,
        "output_tokens": 300,
    }
    answer = owner.post("/api/estimate/", body, format="json")
    assert answer.status_code == 200, answer.content
    options = answer.json()["options"]
    # requests x (input x input price + output x output price) / 1M x multiplier 1.5
    official = (
        (Decimal(1200) * Decimal("0.15") + Decimal(300) * Decimal("0.60")) / 10**6 * Decimal("1.5")
    )
    relay = (Decimal(1200) * 2 + Decimal(300) * 8) / 10**6 * Decimal("1.5")
    assert [(o["upstream"], o["wallet"]) for o in options] == [
        ("openai-official", "CREDIT"),
        ("cny-relay", "RMB"),
    ]
    first, second = options
    assert Decimal(first["per_request"]) == official == Decimal("0.00054")
    assert Decimal(first["per_day"]) == official * 1000
    assert Decimal(first["per_month"]) == official * 1000 * 30
    assert Decimal(second["per_request"]) == relay == Decimal("0.0072")
    assert Decimal(second["per_month"]) == Decimal("216")
    # the relay is tried first for this organization, though it is not the cheapest
    assert (first["first_choice"], second["first_choice"]) == (False, True)


def test_cached_input_is_priced_at_the_cached_price(owner, upstream, upstream_b):
    _routes(upstream.base_url, upstream_b.base_url)
    body = {
        "model": "gpt-4o-mini",
        "requests_per_day": 10,
        "input_tokens": 1000,
        "output_tokens": 0,
        "cached_input_tokens": 400,
    }
    options = owner.post("/api/estimate/", body, format="json").json()["options"]
    relay = next(o for o in options if o["upstream"] == "cny-relay")
    # no cached price set on the route: the catalog's rule for gpt-4o-mini (0.5 × input),
    # as a real request on this route is charged (docs/billing.md, price parts)
    expected = (Decimal(600 * 2) + Decimal(400) * 1) / 10**6 * Decimal("1.5")
    assert Decimal(relay["per_request"]) == expected


@pytest.mark.parametrize(
    "change, field",
    [
        ({"model": "no-such-model"}, "model"),
        ({"requests_per_day": -1}, "requests_per_day"),
        ({"input_tokens": "lots"}, "input_tokens"),
        ({"output_tokens": -5}, "output_tokens"),
        ({"cached_input_tokens": 5000}, "cached_input_tokens"),
    ],
)
def test_bad_estimator_input_is_a_400_naming_the_field(owner, upstream, upstream_b, change, field):
    _routes(upstream.base_url, upstream_b.base_url)
    body = {"model": "gpt-4o-mini", "requests_per_day": 1, "input_tokens": 10, "output_tokens": 1}
    answer = owner.post("/api/estimate/", {**body, **change}, format="json")
    assert answer.status_code == 400
    assert field in answer.json()


def test_a_request_on_the_relay_records_what_the_official_route_would_have_cost(
    gateway, owner, upstream, upstream_b, tenant
):
    _routes(upstream.base_url, upstream_b.base_url)
    raw = gateway.client(tenant.key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    record = UsageRecord.objects.get(request_id=raw.headers["x-request-id"])
    assert record.wallet == "RMB" and not upstream_b.requests
    # the mock reports 12 prompt and 9 completion tokens
    assert record.cost == (Decimal(12 * 2 + 9 * 8) / 10**6) * Decimal("1.5")
    assert record.baseline_wallet == "CREDIT"
    assert record.baseline_cost == (
        Decimal(12) * Decimal("0.15") + 9 * Decimal("0.60")
    ) / 10**6 * Decimal("1.5")

    rows = savings_get(org=tenant.org, by="model")
    assert [(r.group, r.wallet, r.requests) for r in rows] == [("gpt-4o-mini", "RMB", 1)]
    assert rows[0].cost == record.cost and rows[0].baseline == record.baseline_cost
    assert rows[0].saved is None  # CNY and USD are never subtracted without a rate
    assert savings_total(rows)["RMB"]["baseline"] == record.baseline_cost


def test_a_display_rate_adds_a_labelled_converted_saving(
    gateway, owner, upstream, upstream_b, tenant, settings
):
    settings.DISPLAY_FX_USD_CNY = Decimal("7.2")
    _routes(upstream.base_url, upstream_b.base_url)
    gateway.client(tenant.key).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    (row,) = savings_get(org=tenant.org, by="month")
    # baseline 0.0000108 USD - cost 0.000144 CNY / 7.2 = 0.00002 USD: this relay costs more
    assert row.baseline == Decimal("0.0000108") and row.cost == Decimal("0.000144")
    assert row.saved is None and row.saved_converted == Decimal("-0.0000092")


def test_the_estimate_page_shows_every_route_and_fills_from_real_traffic(
    gateway, upstream, upstream_b, tenant, client
):
    _routes(upstream.base_url, upstream_b.base_url)
    member = MembershipFactory(org=tenant.org, role=Role.VIEWER)
    client.force_login(member.user)
    page = client.get(
        "/dashboard/estimate/",
        {
            "model": "gpt-4o-mini",
            "requests_per_day": 100,
            "input_tokens": 1000,
            "output_tokens": 100,
        },
    )
    assert page.status_code == 200
    text = page.content.decode()
    assert "cny-relay" in text and "openai-official" in text and "Used first" in text
    empty = client.get(
        "/dashboard/estimate/", {"source": f"project:{tenant.project.pk}", "scale": "2"}
    )
    assert "No settled requests in the last 7 full days" in empty.content.decode()
