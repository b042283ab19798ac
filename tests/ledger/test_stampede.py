"""Many holds at the same moment against one wallet and one budget: exactly as many succeed
as the money allows, nothing deadlocks, and after settling them `reconcile` passes."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from ledger.errors import BudgetExceeded, InsufficientBalance
from ledger.models import BudgetCounter, Hold, HoldStatus
from ledger.services.budgets import budget_set
from ledger.services.holds import hold_capture, hold_place, hold_void
from projects.services import key_create
from tests.factories import OrganizationFactory, ProjectFactory
from tests.ledger.ledger_helpers import assert_reconciled, fund, run_at_once, wallet

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 30


def _place(org_id, amount, project_id=None, api_key_id=None):
    return hold_place(
        org_id=org_id,
        currency="CREDIT",
        amount=Decimal(amount),
        project_id=project_id,
        api_key_id=api_key_id,
    )


def _settle(holds: list[Hold], cost: str) -> None:
    for i, hold in enumerate(holds):
        if i % 2 == 0:
            hold_capture(hold_id=hold.pk, amount=Decimal(cost))
        else:
            hold_void(hold_id=hold.pk)


def test_a_wallet_stampede_lets_through_exactly_what_the_balance_covers():
    org = OrganizationFactory()
    fund(org, "CREDIT", "12.5")  # covers 12 holds of 1.00, not 13
    results = run_at_once(_place, [(org.pk, "1.00")] * THREADS)

    holds = [r for r in results if isinstance(r, Hold)]
    refused = [r for r in results if isinstance(r, InsufficientBalance)]
    assert len(holds) == 12 and len(refused) == THREADS - 12, results
    assert wallet(org).held == Decimal("12")
    assert_reconciled()

    _settle(holds, "0.40")
    w = wallet(org)
    assert (w.posted, w.held) == (Decimal("12.5") - 6 * Decimal("0.40"), Decimal("0"))
    assert_reconciled()


def test_a_budget_stampede_never_exceeds_the_budget():
    org = OrganizationFactory()
    project = ProjectFactory(org=org)
    fund(org, "CREDIT", "100")
    budget_set(org=org, project=project, currency="CREDIT", amount=Decimal("7.5"), period="day")
    results = run_at_once(_place, [(org.pk, "0.50", project.pk)] * THREADS)

    holds = [r for r in results if isinstance(r, Hold)]
    refused = [r for r in results if isinstance(r, BudgetExceeded)]
    assert len(holds) == 15 and len(refused) == THREADS - 15, results
    assert all(r.scope == "project" for r in refused)
    counter = BudgetCounter.objects.get()
    assert counter.reserved == Decimal("7.5")
    assert wallet(org).held == Decimal("7.5")  # refused holds left nothing reserved

    _settle(holds, "0.25")
    counter.refresh_from_db()
    assert (counter.reserved, counter.spent) == (Decimal("0"), Decimal("8") * Decimal("0.25"))
    assert_reconciled()


def test_many_keys_under_one_project_in_random_order_no_deadlock_no_overrun():
    org = OrganizationFactory()
    project = ProjectFactory(org=org)
    fund(org, "CREDIT", "100")
    budget_set(org=org, project=project, currency="CREDIT", amount=Decimal("10"), period="month")
    keys = [key_create(project=project, name=f"k{i}").api_key for i in range(8)]
    for api_key in keys:
        budget_set(org=org, api_key=api_key, currency="CREDIT", amount=Decimal("2"), period="day")
    calls = [(org.pk, "1", project.pk, api_key.pk) for api_key in keys for _ in range(4)]
    random.Random(7).shuffle(calls)

    results = run_at_once(_place, calls)

    assert not [
        r for r in results if isinstance(r, Exception) and not isinstance(r, BudgetExceeded)
    ]
    holds = [r for r in results if isinstance(r, Hold)]
    # Each key allows 2 and the project 10: exactly 10 of the 32 go through.
    assert len(holds) == 10
    per_key = {}
    for hold in Hold.objects.filter(status=HoldStatus.PENDING).select_related("key_counter"):
        per_key[hold.key_counter.budget_id] = per_key.get(hold.key_counter.budget_id, 0) + 1
    assert max(per_key.values()) <= 2
    for counter in BudgetCounter.objects.select_related("budget"):
        assert counter.reserved + counter.spent <= counter.budget.amount

    _settle(holds, "1")
    assert_reconciled()
