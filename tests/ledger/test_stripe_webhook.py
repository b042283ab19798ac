"""Stripe webhooks credit once per payment, whatever the number, order or concurrency."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client

from ledger.models import TopUp, TopUpProvider, TopUpStatus, Transaction, WebhookEvent
from ledger.money import Currency
from tests.factories import OrganizationFactory
from tests.ledger.topup_helpers import assert_wallets_consistent, posted
from tests.mocks.stripe_api import checkout_event, stripe_signature

pytestmark = pytest.mark.django_db

SECRET = "whsec_test_secret"
COMPLETED = "checkout.session.completed"
ASYNC_OK = "checkout.session.async_payment_succeeded"


@pytest.fixture(autouse=True)
def _stripe_settings(settings):
    settings.STRIPE_SECRET_KEY = "sk_test_dummy"
    settings.STRIPE_WEBHOOK_SECRET = SECRET


def _pending_topup(org, session_id="cs_test_a", amount=Decimal("12.50")) -> TopUp:
    return TopUp.objects.create(
        org=org,
        currency=Currency.CREDIT,
        amount=amount,
        provider=TopUpProvider.STRIPE,
        external_id=session_id,
    )


def _deliver(payload: bytes, *, secret: str = SECRET, url: str = "/webhooks/stripe/", client=None):
    client = client or Client()
    return client.post(
        url,
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=stripe_signature(payload=payload, secret=secret),
    )


def _event(topup: TopUp, event_type: str = COMPLETED, **kwargs) -> bytes:
    kwargs.setdefault("amount_total", 1250)
    return checkout_event(
        event_type=event_type,
        session_id=topup.external_id,
        org_id=topup.org_id,
        topup_id=topup.pk,
        **kwargs,
    )


def test_a_signed_completed_event_credits_the_wallet(org):
    topup = _pending_topup(org)
    response = _deliver(_event(topup))
    assert response.status_code == 200
    assert response.content == b"credited"
    assert posted(org, "CREDIT") == Decimal("12.50")
    topup.refresh_from_db()
    assert topup.status == TopUpStatus.PAID
    assert topup.transaction.reference == "stripe:cs_test_a"
    assert_wallets_consistent()


def test_the_dashboard_path_also_receives_webhooks(org):
    topup = _pending_topup(org)
    assert _deliver(_event(topup), url="/dashboard/webhooks/stripe/").status_code == 200
    assert posted(org, "CREDIT") == Decimal("12.50")


def test_the_amount_comes_from_the_session_not_the_topup_row(org):
    topup = _pending_topup(org, amount=Decimal("999"))
    _deliver(_event(topup, amount_total=500))
    assert posted(org, "CREDIT") == Decimal("5.00")
    topup.refresh_from_db()
    assert topup.amount == Decimal("5.00")
    assert_wallets_consistent()


def test_duplicate_deliveries_credit_once(org):
    topup = _pending_topup(org)
    payload = _event(topup, event_id="evt_dup")
    answers = [_deliver(payload).content for _ in range(3)]
    assert answers == [b"credited", b"duplicate", b"duplicate"]
    assert posted(org, "CREDIT") == Decimal("12.50")
    assert WebhookEvent.objects.count() == 1
    assert_wallets_consistent()


def test_async_success_before_completed_credits_once(org):
    topup = _pending_topup(org)
    assert _deliver(_event(topup, ASYNC_OK)).content == b"credited"
    assert _deliver(_event(topup, COMPLETED)).content == b"already_credited"
    assert posted(org, "CREDIT") == Decimal("12.50")
    assert Transaction.objects.filter(reference="stripe:cs_test_a").count() == 1
    assert_wallets_consistent()


def test_unpaid_completed_waits_for_async_success(org):
    topup = _pending_topup(org)
    assert _deliver(_event(topup, payment_status="unpaid")).content == b"pending"
    assert posted(org, "CREDIT") == 0
    assert _deliver(_event(topup, ASYNC_OK)).content == b"credited"
    assert posted(org, "CREDIT") == Decimal("12.50")


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_STRIPE_SIGNATURE": "t=1,v1=deadbeef"},
        {"HTTP_STRIPE_SIGNATURE": "garbage"},
        {},
    ],
)
def test_a_bad_or_missing_signature_is_a_400_and_moves_nothing(org, headers):
    topup = _pending_topup(org)
    response = Client().post(
        "/webhooks/stripe/", data=_event(topup), content_type="application/json", **headers
    )
    assert response.status_code == 400
    assert posted(org, "CREDIT") == 0
    assert not WebhookEvent.objects.exists()


def test_a_signature_with_another_secret_is_a_400(org):
    topup = _pending_topup(org)
    assert _deliver(_event(topup), secret="whsec_other").status_code == 400
    assert posted(org, "CREDIT") == 0


def test_a_signed_non_json_body_is_a_400(org):
    assert _deliver(b"not json").status_code == 400


def test_a_session_for_another_org_does_not_credit(org):
    other = OrganizationFactory()
    topup = _pending_topup(org)
    payload = checkout_event(
        event_type=COMPLETED,
        session_id=topup.external_id,
        amount_total=1250,
        org_id=other.pk,
        topup_id=topup.pk,
    )
    assert _deliver(payload).content == b"unknown"
    assert posted(org, "CREDIT") == 0 and posted(other, "CREDIT") == 0


def test_webhooks_are_refused_when_stripe_is_not_configured(org, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    topup = _pending_topup(org)
    assert _deliver(_event(topup)).status_code == 400


@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_of_both_events_credit_exactly_once():
    org = OrganizationFactory()
    topup = _pending_topup(org, session_id="cs_test_race")
    payloads = [_event(topup, COMPLETED, event_id="evt_c")] * 3 + [
        _event(topup, ASYNC_OK, event_id="evt_a")
    ] * 3
    barrier = threading.Barrier(len(payloads))
    results: list[tuple[int, bytes]] = []
    errors: list[BaseException] = []

    def deliver(payload: bytes) -> None:
        try:
            barrier.wait(timeout=10)
            response = _deliver(payload)
            results.append((response.status_code, response.content))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=(p,)) for p in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    assert all(status == 200 for status, _ in results), results
    assert sum(1 for _, body in results if body == b"credited") == 1, results
    assert posted(org, "CREDIT") == Decimal("12.50")
    assert Transaction.objects.filter(reference="stripe:cs_test_race").count() == 1
    assert WebhookEvent.objects.count() == 2
    assert_wallets_consistent()
