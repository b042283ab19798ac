"""Money in, under concurrency, and the books after: operator grants with one reference,
many Stripe payments delivered twice and out of order at once, and racing redemptions all
credit exactly once, and `reconcile` passes afterwards."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from ledger.models import TopUp, TopUpProvider, Transaction
from ledger.money import Currency
from ledger.services.redemptions import (
    RedemptionRefused,
    redemption_batch_create,
    redemption_redeem,
)
from ledger.services.topups import stripe_webhook_handle, topup_grant
from tests.factories import OrganizationFactory
from tests.ledger.ledger_helpers import assert_reconciled, run_at_once, wallet
from tests.mocks.stripe_api import checkout_event, stripe_signature

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "whsec_races"


def test_concurrent_operator_grants_with_one_reference_credit_once():
    org = OrganizationFactory()
    results = run_at_once(
        lambda: topup_grant(org=org, currency="RMB", amount=Decimal("30"), reference="INV-7"),
        [()] * 12,
    )
    assert all(isinstance(r, Transaction) for r in results), results
    assert len({r.pk for r in results}) == 1
    assert wallet(org, "RMB").posted == Decimal("30")
    assert TopUp.objects.filter(provider=TopUpProvider.OPERATOR).count() == 1
    assert_reconciled()


def test_many_payments_delivered_twice_out_of_order_and_at_once_credit_once_each(settings):
    settings.STRIPE_SECRET_KEY = "sk_test_dummy"
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    org = OrganizationFactory()
    deliveries = []
    for i in range(6):
        topup = TopUp.objects.create(
            org=org,
            currency=Currency.CREDIT,
            amount=Decimal("5"),
            provider=TopUpProvider.STRIPE,
            external_id=f"cs_many_{i}",
        )
        for event_type in (
            "checkout.session.completed",
            "checkout.session.async_payment_succeeded",
        ):
            payload = checkout_event(
                event_type=event_type,
                session_id=topup.external_id,
                amount_total=500 + i,  # the session's amount is what counts
                org_id=org.pk,
                topup_id=topup.pk,
                event_id=f"evt_{i}_{event_type}",
            )
            deliveries += [(payload,), (payload,)]  # each event delivered twice
    random.Random(3).shuffle(deliveries)

    results = run_at_once(
        lambda payload: stripe_webhook_handle(
            payload=payload, sig_header=stripe_signature(payload=payload, secret=SECRET)
        ),
        deliveries,
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    assert results.count("credited") == 6, results
    expected = sum(Decimal(500 + i) / 100 for i in range(6))
    assert wallet(org).posted == expected
    assert Transaction.objects.filter(reference__startswith="stripe:cs_many_").count() == 6
    assert_reconciled()


def test_racing_redemptions_of_a_batch_credit_each_code_once():
    orgs = [OrganizationFactory() for _ in range(4)]
    _, codes = redemption_batch_create(name="Race", currency="RMB", amount="10", count=3)
    attempts = [(orgs[i % 4], codes[i % 3]) for i in range(15)]
    results = run_at_once(
        lambda org, code: redemption_redeem(org=org, code=code, actor=None), attempts
    )
    credited = [r for r in results if isinstance(r, Transaction)]
    refused = [r for r in results if isinstance(r, RedemptionRefused)]
    assert len(credited) == 3 and len(refused) == 12, results
    assert all(r.reason == "used" for r in refused)
    assert sum(wallet(o, "RMB").posted for o in orgs) == Decimal("30")
    assert_reconciled()
