"""Prices before spending: the Models page and GET /v1/models' `pricing`, per wallet, after
the organization's multiplier."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Role
from tests.factories import MembershipFactory
from tests.routing.conftest import apply, make_tenant

pytestmark = pytest.mark.django_db(transaction=True)


def _two_wallet_model(base_url: str) -> None:
    apply(
        [
            {"name": "official", "base_url": base_url, "wallet": "CREDIT"},
            {"name": "relay-rmb", "base_url": base_url, "wallet": "RMB"},
        ],
        [
            {
                "name": "gpt-4o-mini",
                "routes": [
                    {
                        "upstream": "official",
                        "model": "gpt-4o-mini",
                        "price": {"input": "0.15", "output": "0.6"},
                    },
                    {
                        "upstream": "relay-rmb",
                        "model": "gpt-4o-mini",
                        "price": {"input": "1", "output": "4"},
                    },
                ],
            }
        ],
    )


def test_v1_models_carries_pricing_per_wallet_after_the_multiplier(gateway, upstream):
    t = make_tenant()
    t.org.price_multiplier = Decimal("2")
    t.org.save(update_fields=["price_multiplier"])
    _two_wallet_model(upstream.base_url)
    [model] = gateway.client(t.key).models.list().data
    pricing = model.model_extra["pricing"]
    assert pricing["CREDIT"]["input"] == "0.3" and pricing["CREDIT"]["output"] == "1.2"
    assert pricing["RMB"]["output"] == "8" and pricing["RMB"]["currency"] == "CNY"


def test_the_models_page_lists_each_route_price_per_wallet(upstream):
    t = make_tenant()
    _two_wallet_model(upstream.base_url)
    client = Client()
    client.force_login(MembershipFactory(org=t.org, role=Role.MEMBER).user)
    body = client.get(reverse("models_page")).content.decode()
    assert "gpt-4o-mini" in body and "$0.60" in body and "¥4.00" in body
    assert "Credit (USD)" in body and "RMB (CNY)" in body
    assert 'href="/dashboard/models/"' in body  # the nav links it
