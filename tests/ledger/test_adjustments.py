"""Corrections are new transactions that point at what they correct, carry a reason and the
operator, never overdraw, and cannot refund the same money twice even when raced."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.models import AuditEvent
from ledger.errors import InsufficientBalance, InvalidAmount
from ledger.models import Transaction, TransactionKind
from ledger.services.adjustments import (
    CorrectionRefused,
    adjustment_post,
    transaction_reverse,
    usage_refund,
)
from ledger.services.holds import hold_capture, hold_place
from tests.factories import OrganizationFactory, UserFactory
from tests.ledger.ledger_helpers import assert_reconciled, fund, run_at_once, wallet


def _charged_request(org, cost="2"):
    hold = hold_place(org_id=org.pk, currency="CREDIT", amount=Decimal(cost))
    usage = {"request_id": f"req-{hold.pk}", "model": "m", "wallet": "CREDIT"}
    return hold_capture(hold_id=hold.pk, amount=Decimal(cost), usage=usage).usage_record


@pytest.mark.django_db
def test_an_adjustment_points_at_what_it_corrects_with_reason_and_operator(org):
    operator = UserFactory(is_staff=True)
    fund(org, "CREDIT", "10")
    record = _charged_request(org)
    txn = adjustment_post(
        org=org,
        currency="CREDIT",
        amount=Decimal("0.5"),
        reason="partial outage",
        operator=operator,
        corrects=record.transaction,
    )
    assert (txn.kind, txn.corrects_id, txn.reason, txn.created_by) == (
        TransactionKind.ADJUSTMENT,
        record.transaction_id,
        "partial outage",
        operator,
    )
    assert wallet(org).posted == Decimal("8.5")
    event = AuditEvent.objects.get(action="ledger.adjustment")
    assert event.actor == operator and event.changes["corrects"] == record.transaction_id
    assert_reconciled()


@pytest.mark.django_db
def test_a_debit_beyond_available_is_refused_and_posts_nothing(org):
    fund(org, "CREDIT", "3")
    hold_place(org_id=org.pk, currency="CREDIT", amount=Decimal("2"))  # held counts as spent
    with pytest.raises(InsufficientBalance, match="would overdraw"):
        adjustment_post(org=org, currency="CREDIT", amount="-1.01", reason="x", operator=None)
    adjustment_post(org=org, currency="CREDIT", amount="-1", reason="x", operator=None)
    assert wallet(org).available == 0
    assert Transaction.objects.filter(kind=TransactionKind.ADJUSTMENT).count() == 1
    assert_reconciled()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "kwargs,error",
    [
        ({"amount": "1", "reason": "  "}, InvalidAmount),
        ({"amount": "0", "reason": "x"}, InvalidAmount),
        ({"amount": 1.5, "reason": "x"}, InvalidAmount),
        ({"amount": "abc", "reason": "x"}, InvalidAmount),
    ],
)
def test_bad_adjustments_are_refused(org, kwargs, error):
    with pytest.raises(error):
        adjustment_post(org=org, currency="CREDIT", operator=None, **kwargs)


@pytest.mark.django_db
def test_a_correction_cannot_point_at_another_organizations_transaction(org):
    other = OrganizationFactory()
    fund(other, "CREDIT", "5")
    theirs = Transaction.objects.get(org=other)
    with pytest.raises(CorrectionRefused):
        adjustment_post(
            org=org, currency="CREDIT", amount="1", reason="x", operator=None, corrects=theirs
        )


@pytest.mark.django_db
def test_partial_refunds_never_exceed_the_charge_and_reverse_takes_the_rest(org):
    fund(org, "CREDIT", "10")
    record = _charged_request(org, "2")
    usage_refund(usage_record=record, amount="0.5", reason="slow", operator=None)
    with pytest.raises(CorrectionRefused):
        usage_refund(usage_record=record, amount="1.6", reason="too much", operator=None)
    rest = transaction_reverse(transaction=record.transaction, reason="all back", operator=None)
    assert rest.kind == TransactionKind.REFUND
    assert wallet(org).posted == Decimal("10")
    with pytest.raises(CorrectionRefused):
        usage_refund(usage_record=record, amount=None, reason="again", operator=None)
    assert_reconciled()


@pytest.mark.django_db(transaction=True)
def test_racing_refunds_of_one_request_refund_it_once():
    org = OrganizationFactory()
    fund(org, "CREDIT", "10")
    record = _charged_request(org, "2")
    results = run_at_once(
        lambda: usage_refund(usage_record=record, amount=None, reason="race", operator=None),
        [()] * 8,
    )
    refunds = [r for r in results if isinstance(r, Transaction)]
    refused = [r for r in results if isinstance(r, CorrectionRefused)]
    assert len(refunds) == 1 and len(refused) == 7, results
    assert wallet(org).posted == Decimal("10")
    assert_reconciled()


@pytest.mark.django_db(transaction=True)
def test_racing_reversals_of_a_credit_reverse_it_once():
    org = OrganizationFactory()
    fund(org, "RMB", "4")
    credit = Transaction.objects.get(org=org)
    results = run_at_once(
        lambda: transaction_reverse(transaction=credit, reason="race", operator=None), [()] * 6
    )
    assert len([r for r in results if isinstance(r, Transaction)]) == 1, results
    assert wallet(org, "RMB").posted == Decimal("0")
    assert_reconciled()
