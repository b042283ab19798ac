from decimal import Decimal

import pytest

from ledger.errors import BudgetExceeded, InsufficientBalance
from ledger.models import Account, AccountKind, HoldStatus, Posting
from ledger.services.budgets import budget_set
from ledger.services.holds import hold_capture, hold_place, hold_void
from ledger.services.postings import system_account
from tests.ledger.ledger_helpers import fund

pytestmark = pytest.mark.django_db


def _wallet(org, currency="CREDIT"):
    return Account.objects.get(org=org, currency=currency, kind=AccountKind.WALLET)


def test_capture_charges_the_cost_and_releases_the_rest(org, project):
    fund(org)
    hold = hold_place(org_id=org.pk, currency="CREDIT", amount=Decimal("2"), project_id=project.pk)
    assert _wallet(org).held == Decimal("2")
    result = hold_capture(hold_id=hold.pk, amount=Decimal("0.5"))
    wallet = _wallet(org)
    assert (wallet.posted, wallet.held) == (Decimal("9.5"), Decimal("0"))
    assert result.hold.status == HoldStatus.CAPTURED
    assert sum(p.amount for p in Posting.objects.filter(transaction=result.transaction)) == 0


def test_second_capture_returns_the_first_result(org):
    fund(org)
    hold = hold_place(org_id=org.pk, currency="CREDIT", amount=Decimal("1"))
    first = hold_capture(hold_id=hold.pk, amount=Decimal("0.3"))
    again = hold_capture(hold_id=hold.pk, amount=Decimal("0.9"))
    void = hold_void(hold_id=hold.pk)
    assert not again.created and not void.created
    assert again.transaction.pk == first.transaction.pk
    assert _wallet(org).posted == Decimal("9.7")


def test_hold_beyond_available_balance_is_refused(org):
    fund(org, amount="1")
    with pytest.raises(InsufficientBalance):
        hold_place(org_id=org.pk, currency="CREDIT", amount=Decimal("1.0000000001"))
    assert _wallet(org).held == 0


def test_budget_stops_a_hold_and_names_itself(org, project):
    fund(org)
    budget_set(org=org, project=project, currency="CREDIT", amount=Decimal("1"), period="day")
    hold_place(org_id=org.pk, currency="CREDIT", amount=Decimal("0.6"), project_id=project.pk)
    with pytest.raises(BudgetExceeded) as exc:
        hold_place(org_id=org.pk, currency="CREDIT", amount=Decimal("0.6"), project_id=project.pk)
    assert exc.value.scope == "project"
    assert _wallet(org).held == Decimal("0.6")


def test_cost_above_hold_goes_to_shortfall_not_overdraft(org):
    fund(org, amount="1")
    hold = hold_place(org_id=org.pk, currency="CREDIT", amount=Decimal("1"))
    result = hold_capture(hold_id=hold.pk, amount=Decimal("1.5"))
    assert _wallet(org).posted == Decimal("0")
    shortfall = system_account(currency="CREDIT", kind=AccountKind.SHORTFALL)
    assert Posting.objects.get(transaction=result.transaction, account=shortfall).amount == Decimal(
        "-0.5"
    )
