"""An actual cost above the hold never overdraws the wallet: the excess is booked to the
shortfall account operators see, and the books still balance."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db.models import Sum

from ledger.models import AccountKind, BudgetCounter, Posting
from ledger.services.budgets import budget_set
from ledger.services.holds import hold_capture, hold_place
from ledger.services.postings import system_account
from tests.factories import OrganizationFactory
from tests.ledger.ledger_helpers import assert_reconciled, fund, run_at_once, wallet


def _shortfall_total(currency="CREDIT") -> Decimal:
    account = system_account(currency=currency, kind=AccountKind.SHORTFALL)
    return Posting.objects.filter(account=account).aggregate(s=Sum("amount"))["s"] or Decimal(0)


@pytest.mark.django_db
def test_a_cost_above_the_hold_charges_only_the_hold_and_books_the_excess(org, project):
    fund(org, "CREDIT", "3")
    budget_set(org=org, project=project, currency="CREDIT", amount=Decimal("3"), period="day")
    hold = hold_place(org_id=org.pk, currency="CREDIT", amount=Decimal("3"), project_id=project.pk)
    result = hold_capture(
        hold_id=hold.pk,
        amount=Decimal("4.25"),
        usage={"request_id": "r-over", "model": "m", "wallet": "CREDIT"},
    )
    w = wallet(org)
    assert (w.posted, w.held, w.available) == (Decimal("0"), Decimal("0"), Decimal("0"))
    assert result.hold.captured_amount == Decimal("3")
    assert result.usage_record.cost == Decimal("4.25")  # the record tells the real cost
    assert _shortfall_total() == Decimal("-1.25")
    counter = BudgetCounter.objects.get()
    assert counter.spent == Decimal("3")  # the budget never goes past its limit either
    assert_reconciled()


@pytest.mark.django_db
def test_a_rich_wallet_is_still_charged_only_what_was_held(org):
    fund(org, "CREDIT", "100")
    hold = hold_place(org_id=org.pk, currency="CREDIT", amount=Decimal("1"))
    hold_capture(hold_id=hold.pk, amount=Decimal("1.5"))
    assert wallet(org).posted == Decimal("99")
    assert _shortfall_total() == Decimal("-0.5")
    assert_reconciled()


@pytest.mark.django_db(transaction=True)
def test_concurrent_captures_above_their_holds_never_overdraw():
    org = OrganizationFactory()
    fund(org, "CREDIT", "10")
    holds = [hold_place(org_id=org.pk, currency="CREDIT", amount=Decimal("1")) for _ in range(10)]
    assert wallet(org).available == 0
    results = run_at_once(
        lambda hold_id: hold_capture(hold_id=hold_id, amount=Decimal("2.5")),
        [(h.pk,) for h in holds],
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    w = wallet(org)
    assert (w.posted, w.held) == (Decimal("0"), Decimal("0"))
    assert _shortfall_total() == Decimal("-15")
    assert_reconciled()
