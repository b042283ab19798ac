"""Both wallets can be funded: RMB through Stripe Checkout in CNY with Alipay and WeChat Pay
(same webhook, idempotency and ledger as Credit), the test provider for both currencies, a
cancelled test payment is marked cancelled, and every paid top-up has a printable receipt."""

from __future__ import annotations

from decimal import Decimal

import pytest
import stripe
from django.urls import reverse

from accounts.models import Role
from ledger.models import TopUp, TopUpStatus, Transaction
from ledger.services.topups import topup_grant
from tests.factories import MembershipFactory, OrganizationFactory
from tests.ledger.topup_helpers import assert_wallets_consistent, posted
from tests.mocks.stripe_api import StripeApiServer, checkout_event, stripe_signature

pytestmark = pytest.mark.django_db


@pytest.fixture
def stripe_api(settings, monkeypatch):
    settings.STRIPE_SECRET_KEY = "sk_test_mock"
    settings.STRIPE_WEBHOOK_SECRET = "whsec_mock"
    with StripeApiServer() as server:
        monkeypatch.setattr(stripe, "api_base", server.url)
        yield server


@pytest.fixture
def test_provider(settings):
    settings.STRIPE_SECRET_KEY = ""
    settings.STRIPE_WEBHOOK_SECRET = ""
    settings.DEBUG = True
    return settings


def _owner(client, org):
    user = MembershipFactory(org=org, role=Role.OWNER).user
    client.force_login(user)
    return user


def _deliver(client, payload):
    return client.post(
        "/webhooks/stripe/",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=stripe_signature(payload=payload, secret="whsec_mock"),
    )


def test_rmb_checkout_uses_cny_with_alipay_and_wechat_pay_and_credits_once(client, org, stripe_api):
    _owner(client, org)
    response = client.post(reverse("ledger:topup_checkout"), {"currency": "RMB", "amount": "88"})
    assert response.status_code == 302
    [request] = stripe_api.requests
    params = request["params"]
    assert params["line_items[0][price_data][currency]"] == "cny"
    assert params["line_items[0][price_data][unit_amount]"] == "8800"
    assert params["payment_method_types[0]"] == "alipay"
    assert params["payment_method_types[1]"] == "wechat_pay"
    assert params["payment_method_options[wechat_pay][client]"] == "web"
    topup = TopUp.objects.get(org=org)
    assert (topup.currency, topup.status) == ("RMB", TopUpStatus.PENDING)
    assert params["cancel_url"].endswith(f"?cancelled={topup.pk}")

    payload = checkout_event(
        event_type="checkout.session.completed",
        session_id=topup.external_id,
        amount_total=8800,
        org_id=org.pk,
        topup_id=topup.pk,
        currency="cny",
    )
    assert _deliver(client, payload).status_code == 200
    assert _deliver(client, payload).content == b"duplicate"
    assert posted(org, "RMB") == Decimal("88") and posted(org, "CREDIT") == 0
    assert_wallets_consistent()


def test_a_usd_session_never_credits_the_rmb_wallet(client, org, stripe_api):
    _owner(client, org)
    client.post(reverse("ledger:topup_checkout"), {"currency": "RMB", "amount": "10"})
    topup = TopUp.objects.get(org=org)
    payload = checkout_event(
        event_type="checkout.session.completed",
        session_id=topup.external_id,
        amount_total=1000,
        org_id=org.pk,
        topup_id=topup.pk,
        currency="usd",
    )
    assert _deliver(client, payload).status_code == 400
    assert posted(org, "RMB") == 0


def test_the_amounts_allowed_are_said_in_a_sentence(client, org, stripe_api):
    _owner(client, org)
    html = client.get(reverse("ledger:topup")).content.decode()
    assert "from ¥4.00 to ¥70,000.00" in html and "from $0.50 to $10,000.00" in html
    response = client.post(reverse("ledger:topup_checkout"), {"currency": "RMB", "amount": "1"})
    assert response.status_code == 400
    assert "A RMB (CNY) top-up must be between ¥4.00 and ¥70,000.00." in response.content.decode()
    assert stripe_api.requests == []


@pytest.mark.parametrize("currency", ["RMB", "CREDIT"])
def test_the_test_provider_funds_both_wallets_and_a_reload_credits_once(
    client, org, test_provider, currency
):
    _owner(client, org)
    started = client.post(reverse("ledger:topup_checkout"), {"currency": currency, "amount": "20"})
    assert started.status_code == 302
    paid = client.post(started["Location"], {"action": "pay"})
    assert paid.status_code == 302 and paid["Location"] == reverse("ledger:topup")
    client.post(started["Location"], {"action": "pay"})  # the browser re-posts: still once
    assert posted(org, currency) == Decimal("20")
    assert Transaction.objects.filter(org=org).count() == 1


def test_a_cancelled_test_payment_is_marked_and_cannot_be_paid(client, org, test_provider):
    _owner(client, org)
    started = client.post(reverse("ledger:topup_checkout"), {"currency": "RMB", "amount": "20"})
    page = client.get(reverse("ledger:topup")).content.decode()
    assert "Resume payment" in page
    client.post(started["Location"], {"action": "cancel"})
    topup = TopUp.objects.get(org=org)
    assert topup.status == TopUpStatus.CANCELLED
    client.post(started["Location"], {"action": "pay"})
    assert posted(org, "RMB") == 0
    assert "Cancelled" in client.get(reverse("ledger:topup")).content.decode()


def test_a_receipt_names_org_amount_method_and_a_per_org_number(client, org, test_provider):
    other = OrganizationFactory()
    for i in range(3):  # another customer's volume must not show in our numbers
        topup_grant(org=other, currency="CREDIT", amount=Decimal("1"), reference=f"o{i}")
    topup_grant(org=org, currency="RMB", amount=Decimal("30"), reference="ours")
    _owner(client, org)
    page = client.get(reverse("ledger:topup")).content.decode()
    assert "R-0001" in page and "R-0004" not in page
    topup = TopUp.objects.get(org=org)
    receipt = client.get(reverse("ledger:topup_receipt", args=[topup.pk])).content.decode()
    assert org.name in receipt and "¥30.00" in receipt and "RMB (CNY)" in receipt
    assert "Granted by tokenforge" in receipt and "R-0001" in receipt and "Print" in receipt
    foreign = TopUp.objects.filter(org=other).first()
    assert client.get(reverse("ledger:topup_receipt", args=[foreign.pk])).status_code == 404


def test_returning_from_a_cancelled_checkout_marks_the_top_up_cancelled(client, org, stripe_api):
    _owner(client, org)
    client.post(reverse("ledger:topup_checkout"), {"currency": "RMB", "amount": "10"})
    topup = TopUp.objects.get(org=org)
    page = client.get(reverse("ledger:topup") + f"?cancelled={topup.pk}", follow=True)
    assert "Payment cancelled: nothing was charged." in page.content.decode()
    topup.refresh_from_db()
    assert topup.status == TopUpStatus.CANCELLED


def test_an_expired_checkout_session_marks_the_top_up_cancelled(client, org, stripe_api):
    _owner(client, org)
    client.post(reverse("ledger:topup_checkout"), {"currency": "CREDIT", "amount": "10"})
    topup = TopUp.objects.get(org=org)
    payload = checkout_event(
        event_type="checkout.session.expired",
        session_id=topup.external_id,
        amount_total=1000,
        org_id=org.pk,
        topup_id=topup.pk,
        payment_status="unpaid",
    )
    assert _deliver(client, payload).content == b"expired"
    topup.refresh_from_db()
    assert topup.status == TopUpStatus.CANCELLED and posted(org, "CREDIT") == 0
