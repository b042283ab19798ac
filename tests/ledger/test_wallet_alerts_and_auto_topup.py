"""Low-balance alerts per wallet (email once per crossing, an optional signed webhook) and
auto top-up of Credit by a saved card (Stripe off-session; the test provider in development),
with failures shown on the page and alerted."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import stripe
from django.urls import reverse

from accounts.models import Role
from ledger.models import TopUp, TopUpStatus, WalletWatch
from ledger.services.topups import topup_grant
from ledger.services.wallet_watch import auto_topup_set, wallet_alert_set, wallets_watch
from tests.factories import MembershipFactory
from tests.ledger.topup_helpers import assert_wallets_consistent, posted
from tests.mocks.stripe_api import StripeApiServer, checkout_event, stripe_signature

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner_email(org):
    return MembershipFactory(org=org, role=Role.OWNER).user.email


@pytest.fixture
def test_provider(settings):
    settings.STRIPE_SECRET_KEY = ""
    settings.STRIPE_WEBHOOK_SECRET = ""
    settings.DEBUG = True
    return settings


@pytest.fixture
def hook():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"body": body, "signature": self.headers["X-Tokenforge-Signature"]})
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


def test_a_low_balance_alert_emails_once_per_crossing_and_rearms(org, owner_email, mailoutbox):
    topup_grant(org=org, currency="RMB", amount=Decimal("3"), reference="start")
    wallet_alert_set(org=org, currency="RMB", threshold=Decimal("5"))
    assert wallets_watch(org=org)["alerts"] == 1
    assert wallets_watch(org=org)["alerts"] == 0  # still low: no second email
    [mail] = mailoutbox
    assert owner_email in mail.to and "RMB (CNY)" in mail.subject and "¥3" in mail.body
    topup_grant(org=org, currency="RMB", amount=Decimal("10"), reference="more")
    assert wallets_watch(org=org)["alerts"] == 0
    assert WalletWatch.objects.get(org=org).alerted_at is None  # re-armed above it


def test_the_webhook_gets_a_signed_event(org, owner_email, hook):
    url, received = hook
    watch = wallet_alert_set(
        org=org, currency="CREDIT", threshold=Decimal("1"), webhook_url=url, email=False
    )
    wallets_watch(org=org)
    [delivery] = received
    event = json.loads(delivery["body"])
    assert event["type"] == "wallet.low_balance" and event["wallet"] == "CREDIT"
    t, v1 = (part.split("=", 1)[1] for part in delivery["signature"].split(","))
    expected = hmac.new(
        watch.webhook_secret.encode(), f"{t}.".encode() + delivery["body"], hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(v1, expected)


def test_auto_topup_with_the_test_provider_charges_once(org, owner_email, test_provider):
    auto_topup_set(
        org=org, enabled=True, threshold=Decimal("5"), amount=Decimal("20"), test_card="test_card"
    )
    assert wallets_watch(org=org)["charged"] == 1
    assert posted(org, "CREDIT") == Decimal("20")
    assert wallets_watch(org=org)["charged"] == 0  # above the threshold now
    assert posted(org, "CREDIT") == Decimal("20")
    assert_wallets_consistent()


def test_a_declined_auto_topup_is_shown_and_alerted(client, org, test_provider, mailoutbox):
    user = MembershipFactory(org=org, role=Role.OWNER).user
    auto_topup_set(
        org=org,
        enabled=True,
        threshold=Decimal("5"),
        amount=Decimal("20"),
        test_card="test_card_declined",
    )
    assert wallets_watch(org=org)["failed"] == 1
    assert wallets_watch(org=org)["failed"] == 0  # not retried within the hour
    assert posted(org, "CREDIT") == 0
    assert TopUp.objects.get(org=org).status == TopUpStatus.FAILED
    assert "auto top-up of Credit failed" in mailoutbox[0].subject
    client.force_login(user)
    page = client.get(reverse("ledger:topup")).content.decode()
    assert "Last auto top-up failed: The card was declined" in page


def test_stripe_saves_the_card_at_checkout_and_charges_it_off_session(
    client, org, settings, monkeypatch
):
    settings.STRIPE_SECRET_KEY = "sk_test_mock"
    settings.STRIPE_WEBHOOK_SECRET = "whsec_mock"
    client.force_login(MembershipFactory(org=org, role=Role.OWNER).user)
    with StripeApiServer() as api:
        monkeypatch.setattr(stripe, "api_base", api.url)
        client.post(reverse("ledger:topup_checkout"), {"amount": "10"})
        params = api.requests[0]["params"]
        assert params["customer_creation"] == "always"
        assert params["payment_intent_data[setup_future_usage]"] == "off_session"
        topup = TopUp.objects.get(org=org)
        payload = checkout_event(
            event_type="checkout.session.completed",
            session_id=topup.external_id,
            amount_total=1000,
            org_id=org.pk,
            topup_id=topup.pk,
            customer="cus_saved",
        )
        client.post(
            "/webhooks/stripe/",
            data=payload,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=stripe_signature(payload=payload, secret="whsec_mock"),
        )
        assert WalletWatch.objects.get(org=org, currency="CREDIT").stripe_customer_id == "cus_saved"
        auto_topup_set(org=org, enabled=True, threshold=Decimal("15"), amount=Decimal("25"))
        assert wallets_watch(org=org)["charged"] == 1
        intent = [r for r in api.requests if r["path"] == "/v1/payment_intents"][0]["params"]
    assert intent["off_session"] == "true" and intent["confirm"] == "true"
    assert intent["customer"] == "cus_saved" and intent["amount"] == "2500"
    assert posted(org, "CREDIT") == Decimal("35")


def test_the_page_saves_alerts_and_explains_bad_input(client, org, test_provider):
    client.force_login(MembershipFactory(org=org, role=Role.ADMIN).user)
    saved = client.post(
        reverse("ledger:topup_alert_save"), {"currency": "RMB", "threshold": "8", "email": "on"}
    )
    assert saved.status_code == 302
    assert WalletWatch.objects.get(org=org, currency="RMB").alert_threshold == Decimal("8")
    bad = client.post(
        reverse("ledger:topup_auto_save"), {"enabled": "on", "threshold": "5"}, follow=True
    )
    assert "Give both the amount to add and the balance that triggers it." in bad.content.decode()
