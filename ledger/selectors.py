"""Reads of the money core used by the proxy (`/v1/key`) and the dashboard."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Q
from django.utils import timezone

from ledger.models import Account, AccountKind, Budget, BudgetCounter
from ledger.money import ZERO
from ledger.periods import period_start


def wallet_balances(*, org_id: int) -> list[dict]:
    wallets = Account.objects.filter(org_id=org_id, kind=AccountKind.WALLET).order_by("currency")
    return [
        {"currency": w.currency, "posted": w.posted, "held": w.held, "available": w.posted - w.held}
        for w in wallets
    ]


def budgets_status(*, project_id: int, api_key_id: int | None = None) -> list[dict]:
    """Each active budget of the project (and key) for its current period."""
    owners = Q(project_id=project_id)
    if api_key_id is not None:
        owners |= Q(api_key_id=api_key_id)
    now = timezone.now()
    budgets = list(
        Budget.objects.filter(owners, removed_at__isnull=True).order_by("api_key_id", "currency")
    )
    starts = {b.pk: period_start(b.period, now) for b in budgets}
    counters = {
        (c.budget_id, c.period_start): c
        for c in BudgetCounter.objects.filter(
            budget_id__in=[b.pk for b in budgets], period_start__in=set(starts.values())
        )
    }
    rows = []
    for budget in budgets:
        counter = counters.get((budget.pk, starts[budget.pk]))
        spent: Decimal = counter.spent if counter else ZERO
        held: Decimal = counter.reserved if counter else ZERO
        rows.append(
            {
                "id": budget.pk,
                "scope": "key" if budget.api_key_id else "project",
                "currency": budget.currency,
                "period": budget.period,
                "period_start": starts[budget.pk],
                "limit": budget.amount,
                "spent": spent,
                "held": held,
                "remaining": max(budget.amount - spent - held, ZERO),
                "soft_threshold": budget.soft_threshold,
                "created_at": budget.created_at,
            }
        )
    return rows
