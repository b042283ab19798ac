"""The top-up page creates a Stripe Checkout Session (against a local mock Stripe API)."""

from __future__ import annotations

from decimal import Decimal

import pytest
import stripe
from django.urls import reverse

from accounts.models import Role
from ledger.models import TopUp, TopUpProvider, TopUpStatus
from tests.factories import MembershipFactory
from tests.ledger.topup_helpers import posted
from tests.mocks.stripe_api import StripeApiServer, checkout_event, stripe_signature

pytestmark = pytest.mark.django_db


@pytest.fixture
def stripe_api(settings, monkeypatch):
    settings.STRIPE_SECRET_KEY = "sk_test_mock"
    settings.STRIPE_WEBHOOK_SECRET = "whsec_mock"
    with StripeApiServer() as server:
        monkeypatch.setattr(stripe, "api_base", server.url)
        yield server


def test_posting_an_amount_creates_a_checkout_session_and_redirects_to_it(client, org, stripe_api):
    owner = MembershipFactory(org=org, role=Role.OWNER).user
    client.force_login(owner)
    response = client.post(reverse("ledger:topup_checkout"), {"amount": "12.50"})
    assert response.status_code == 302
    assert response["Location"].startswith("https://checkout.stripe.test/pay/cs_test_")

    [request] = stripe_api.requests
    params = request["params"]
    assert request["path"] == "/v1/checkout/sessions"
    assert request["auth"] == "Bearer sk_test_mock"
    topup = TopUp.objects.get(org=org)
    assert params["mode"] == "payment"
    assert params["line_items[0][price_data][currency]"] == "usd"
    assert params["line_items[0][price_data][unit_amount]"] == "1250"
    assert params["line_items[0][quantity]"] == "1"
    assert params["metadata[org_id]"] == str(org.pk)
    assert params["metadata[topup_id]"] == str(topup.pk)
    assert params["client_reference_id"] == str(topup.pk)
    assert "{CHECKOUT_SESSION_ID}" in params["success_url"]
    assert (topup.provider, topup.status, topup.amount) == (
        TopUpProvider.STRIPE,
        TopUpStatus.PENDING,
        Decimal("12.50"),
    )
    assert topup.external_id == response["Location"].rsplit("/", 1)[1]
    assert posted(org, "CREDIT") == 0  # nothing until the webhook says paid

    payload = checkout_event(
        event_type="checkout.session.completed",
        session_id=topup.external_id,
        amount_total=1250,
        org_id=org.pk,
        topup_id=topup.pk,
    )
    webhook = client.post(
        "/webhooks/stripe/",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=stripe_signature(payload=payload, secret="whsec_mock"),
    )
    assert webhook.status_code == 200
    assert posted(org, "CREDIT") == Decimal("12.50")


@pytest.mark.parametrize("amount", ["0", "-5", "0.10", "abc", "1.234", "99999999"])
def test_bad_amounts_never_reach_stripe(client, org, stripe_api, amount):
    client.force_login(MembershipFactory(org=org, role=Role.ADMIN).user)
    response = client.post(reverse("ledger:topup_checkout"), {"amount": amount})
    assert response.status_code == 400
    assert stripe_api.requests == []
    assert not TopUp.objects.exists()


def test_a_stripe_outage_is_a_message_not_a_500(client, org, settings, monkeypatch):
    settings.STRIPE_SECRET_KEY = "sk_test_mock"
    settings.STRIPE_WEBHOOK_SECRET = "whsec_mock"
    monkeypatch.setattr(stripe, "api_base", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    client.force_login(MembershipFactory(org=org, role=Role.OWNER).user)
    response = client.post(reverse("ledger:topup_checkout"), {"amount": "5"}, follow=True)
    assert response.status_code == 200
    assert b"could not be reached" in response.content
