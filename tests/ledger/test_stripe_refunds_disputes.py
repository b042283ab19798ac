"""Card refunds and disputes take the money back out of the wallet (down to zero, the rest on
the receivable account with an alert), once per event and per amount, and show in admin and
on the Ledger page."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.urls import reverse

from accounts.models import User
from ledger.models import (
    Account,
    AccountKind,
    PaymentReversal,
    TopUp,
    TopUpProvider,
    Transaction,
    TransactionKind,
)
from ledger.money import Currency
from ledger.services.holds import hold_place
from ledger.services.reconcile import reconcile
from tests.factories import MembershipFactory
from tests.ledger.topup_helpers import assert_wallets_consistent, posted
from tests.mocks.stripe_api import (
    charge_refunded_event,
    checkout_event,
    dispute_event,
    stripe_signature,
)
from tests.projects.dashboard_fixtures import usage_add

pytestmark = pytest.mark.django_db

SECRET = "whsec_test_secret"
PI = "pi_test_1"
CHARGE = "ch_test_1"


@pytest.fixture(autouse=True)
def _stripe_settings(settings):
    settings.STRIPE_SECRET_KEY = "sk_test_dummy"
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    settings.ADMINS = [("Ops", "ops@example.com")]


def _deliver(payload: bytes) -> bytes:
    response = Client().post(
        "/webhooks/stripe/",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=stripe_signature(payload=payload, secret=SECRET),
    )
    assert response.status_code == 200, response.content
    return response.content


@pytest.fixture
def paid(org) -> TopUp:
    """A card top-up of 12.50 paid through Checkout (its PaymentIntent recorded)."""
    topup = TopUp.objects.create(
        org=org,
        currency=Currency.CREDIT,
        amount=Decimal("12.50"),
        provider=TopUpProvider.STRIPE,
        external_id="cs_test_paid",
    )
    payload = checkout_event(
        event_type="checkout.session.completed",
        session_id="cs_test_paid",
        amount_total=1250,
        org_id=org.pk,
        topup_id=topup.pk,
        payment_intent=PI,
    )
    assert _deliver(payload) == b"credited"
    topup.refresh_from_db()
    assert topup.payment_intent == PI
    return topup


def _refund(refunded: int, *, event_id=None, payment_intent=PI, metadata=None) -> bytes:
    return _deliver(
        charge_refunded_event(
            charge_id=CHARGE,
            payment_intent=payment_intent,
            amount=1250,
            amount_refunded=refunded,
            metadata=metadata,
            event_id=event_id,
        )
    )


def _dispute(event_type: str, status: str, *, amount=1250, dispute_id="du_test_1", event_id=None):
    return _deliver(
        dispute_event(
            event_type=event_type,
            dispute_id=dispute_id,
            charge_id=CHARGE,
            payment_intent=PI,
            amount=amount,
            status=status,
            event_id=event_id,
        )
    )


def _receivable() -> Decimal:
    account = Account.objects.filter(org__isnull=True, kind=AccountKind.RECEIVABLE).first()
    if account is None:
        return Decimal("0")
    return sum((p.amount for p in account.postings.all()), Decimal("0"))


def _check_books():
    assert_wallets_consistent()
    report = reconcile()
    assert report.ok, report.problems


def test_a_full_refund_of_an_unspent_top_up_empties_the_wallet(org, paid):
    assert posted(org, "CREDIT") == Decimal("12.50")
    assert _refund(1250) == b"refunded"
    assert posted(org, "CREDIT") == 0
    row = PaymentReversal.objects.get()
    assert (row.kind, row.status, row.amount) == ("refund", "refunded", Decimal("12.50"))
    assert row.from_wallet == Decimal("12.50") and row.to_receivable == 0
    assert _receivable() == 0
    assert not mail.outbox
    _check_books()


def test_a_refund_after_spending_takes_the_wallet_to_zero_and_books_the_rest_as_receivable(
    org, paid, caplog, django_capture_on_commit_callbacks
):
    usage_add(org=org, cost="10")
    assert posted(org, "CREDIT") == Decimal("2.50")
    with django_capture_on_commit_callbacks(execute=True):
        assert _refund(1250) == b"refunded"
    assert posted(org, "CREDIT") == 0
    row = PaymentReversal.objects.get()
    assert row.from_wallet == Decimal("2.50") and row.to_receivable == Decimal("10")
    assert _receivable() == Decimal("-10")
    assert len(mail.outbox) == 1 and "owes 10 CREDIT" in mail.outbox[0].subject
    assert "owes 10 CREDIT" in caplog.text
    _check_books()


def test_money_held_for_in_flight_requests_stays_and_the_rest_is_receivable(org, paid):
    hold_place(org_id=org.pk, currency="CREDIT", amount=Decimal("5"))
    assert _refund(1250) == b"refunded"
    wallet = Account.objects.get(org=org, kind=AccountKind.WALLET, currency="CREDIT")
    assert wallet.posted == Decimal("5") and wallet.held == Decimal("5")
    assert PaymentReversal.objects.get().to_receivable == Decimal("5")


def test_duplicate_and_repeated_refund_events_move_money_once(org, paid):
    assert _refund(1250, event_id="evt_r1") == b"refunded"
    assert _refund(1250, event_id="evt_r1") == b"duplicate"
    assert _refund(1250, event_id="evt_r2") == b"already_refunded"
    assert Transaction.objects.filter(kind=TransactionKind.CHARGEBACK).count() == 1
    assert posted(org, "CREDIT") == 0
    _check_books()


def test_partial_refunds_follow_the_running_total_in_any_order(org, paid):
    assert _refund(500) == b"refunded"
    assert posted(org, "CREDIT") == Decimal("7.50")
    assert _refund(1250) == b"refunded"
    assert _refund(500) == b"already_refunded"  # a late, older state moves nothing back
    assert posted(org, "CREDIT") == 0
    assert PaymentReversal.objects.get().from_wallet == Decimal("12.50")
    _check_books()


def test_a_refund_is_found_by_the_payment_metadata_without_a_payment_intent(org, paid):
    TopUp.objects.filter(pk=paid.pk).update(payment_intent="")
    assert _refund(300, payment_intent=None, metadata={"topup_id": str(paid.pk)}) == b"refunded"
    assert posted(org, "CREDIT") == Decimal("9.50")


def test_an_unknown_payment_moves_nothing(org, paid):
    assert _refund(1250, payment_intent="pi_other") == b"unknown"
    assert posted(org, "CREDIT") == Decimal("12.50")
    assert not PaymentReversal.objects.exists()


def test_a_dispute_takes_the_money_and_winning_it_gives_exactly_that_back(org, paid):
    usage_add(org=org, cost="10")
    assert _dispute("charge.dispute.created", "needs_response") == b"dispute_opened"
    assert posted(org, "CREDIT") == 0
    row = PaymentReversal.objects.get()
    assert (row.status, row.from_wallet, row.to_receivable) == (
        "open",
        Decimal("2.50"),
        Decimal("10"),
    )
    assert _dispute("charge.dispute.created", "needs_response") == b"dispute_opened"  # no-op
    assert posted(org, "CREDIT") == 0
    assert _dispute("charge.dispute.closed", "won") == b"dispute_won"
    assert posted(org, "CREDIT") == Decimal("2.50")
    assert _receivable() == 0
    row.refresh_from_db()
    assert row.status == "won"
    assert _dispute("charge.dispute.closed", "won") == b"dispute_won"
    assert posted(org, "CREDIT") == Decimal("2.50")
    _check_books()


def test_a_lost_dispute_keeps_the_money_out(org, paid):
    _dispute("charge.dispute.created", "needs_response")
    assert _dispute("charge.dispute.closed", "lost") == b"dispute_lost"
    assert posted(org, "CREDIT") == 0
    assert PaymentReversal.objects.get().status == "lost"
    assert Transaction.objects.filter(kind=TransactionKind.CHARGEBACK).count() == 1
    _check_books()


def test_a_close_that_arrives_before_the_open_still_moves_money_once(org, paid):
    assert _dispute("charge.dispute.closed", "lost") == b"dispute_lost"
    assert _dispute("charge.dispute.created", "needs_response") == b"dispute_lost"
    assert posted(org, "CREDIT") == 0
    assert Transaction.objects.filter(kind=TransactionKind.CHARGEBACK).count() == 1


def test_an_inquiry_moves_no_money(org, paid):
    assert _dispute("charge.dispute.created", "warning_needs_response") == b"inquiry_recorded"
    assert _dispute("charge.dispute.closed", "warning_closed") == b"inquiry_recorded"
    assert posted(org, "CREDIT") == Decimal("12.50")
    assert PaymentReversal.objects.get().status == "closed"


def test_refunds_and_disputes_never_take_back_more_than_the_top_up(org, paid):
    _refund(500)
    _dispute("charge.dispute.created", "needs_response", amount=1250)
    row = PaymentReversal.objects.get(kind="dispute")
    assert row.from_wallet + row.to_receivable == Decimal("7.50")
    assert posted(org, "CREDIT") == 0
    assert _receivable() == 0
    _check_books()


def test_reversals_show_in_admin_and_on_the_ledger_page(org, paid):
    usage_add(org=org, cost="10")
    _refund(1250)
    operator = User.objects.create_superuser(email="root@example.com", password="pw-root-1234")
    admin = Client()
    admin.force_login(operator)
    changelist = reverse("admin:ledger_paymentreversal_changelist")
    body = admin.get(changelist, {"receivable": "yes", "q": CHARGE}).content.decode()
    assert CHARGE in body
    row = PaymentReversal.objects.get()
    detail = admin.get(reverse("admin:ledger_paymentreversal_change", args=[row.pk]))
    assert f"stripe-refund:{CHARGE}:1250" in detail.content.decode()
    owner = MembershipFactory(org=org).user
    customer = Client()
    customer.force_login(owner)
    page = customer.get(reverse("ledger:ledger"), {"view": "money", "kind": "chargeback"})
    assert page.status_code == 200
    text = page.content.decode()
    assert "Card refund or dispute" in text
    assert "-$2.50" in text  # the one money format: symbol, two decimals


@pytest.mark.django_db(transaction=True)
def test_concurrent_refund_and_dispute_deliveries_never_take_back_more_than_the_top_up():
    from tests.factories import OrganizationFactory

    org = OrganizationFactory()
    topup = TopUp.objects.create(
        org=org,
        currency=Currency.CREDIT,
        amount=Decimal("12.50"),
        provider=TopUpProvider.STRIPE,
        external_id="cs_test_race",
    )
    _deliver(
        checkout_event(
            event_type="checkout.session.completed",
            session_id="cs_test_race",
            amount_total=1250,
            org_id=org.pk,
            topup_id=topup.pk,
            payment_intent=PI,
        )
    )
    payloads = [
        charge_refunded_event(
            charge_id=CHARGE, payment_intent=PI, amount=1250, amount_refunded=1250
        )
        for _ in range(3)
    ] + [
        dispute_event(
            event_type="charge.dispute.created",
            dispute_id="du_race",
            charge_id=CHARGE,
            payment_intent=PI,
            amount=1250,
            status="needs_response",
        )
        for _ in range(3)
    ]
    barrier = threading.Barrier(len(payloads))
    errors: list[BaseException] = []

    def deliver(payload: bytes) -> None:
        try:
            barrier.wait(timeout=10)
            _deliver(payload)
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
    taken = sum(
        (r.from_wallet + r.to_receivable for r in PaymentReversal.objects.all()), Decimal("0")
    )
    assert taken == Decimal("12.50")
    assert posted(org, "CREDIT") == 0
    _check_books()


def test_a_refund_before_its_payment_is_credited_asks_stripe_to_retry(org):
    topup = TopUp.objects.create(
        org=org,
        currency=Currency.CREDIT,
        amount=Decimal("12.50"),
        provider=TopUpProvider.STRIPE,
        external_id="cs_test_late",
    )
    payload = charge_refunded_event(
        charge_id=CHARGE,
        payment_intent=PI,
        amount=1250,
        amount_refunded=1250,
        metadata={"topup_id": str(topup.pk)},
    )
    response = Client().post(
        "/webhooks/stripe/",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=stripe_signature(payload=payload, secret=SECRET),
    )
    assert response.status_code == 409
    assert not PaymentReversal.objects.exists()
    _deliver(
        checkout_event(
            event_type="checkout.session.completed",
            session_id="cs_test_late",
            amount_total=1250,
            org_id=org.pk,
            topup_id=topup.pk,
            payment_intent=PI,
        )
    )
    assert _deliver(payload) == b"refunded"  # Stripe's retry
    assert posted(org, "CREDIT") == 0
