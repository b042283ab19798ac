"""Budgets on projects and keys, and the per-period counters the holds reserve against."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Organization
from ledger.errors import InvalidAmount
from ledger.models import Budget, BudgetCounter, Period
from ledger.money import Currency, to_money
from ledger.periods import period_start


@transaction.atomic
def budget_set(
    *,
    org: Organization,
    currency: str,
    amount: Decimal | str,
    period: str,
    project: Any | None = None,
    api_key: Any | None = None,
    soft_threshold: Decimal | str | None = None,
    actor: Any | None = None,
) -> Budget:
    """Create or change the one budget of a project or key in a currency."""
    if (project is None) == (api_key is None):
        raise ValueError("a budget belongs to exactly one project or one key")
    if currency not in Currency.values:
        raise InvalidAmount(f"unknown currency {currency!r}; use CREDIT or RMB")
    if period not in Period.values:
        raise InvalidAmount(f"unknown period {period!r}; use day, week, month or total")
    try:
        amount = to_money(amount)
    except (ArithmeticError, TypeError, ValueError) as exc:
        raise InvalidAmount(f"invalid amount {amount!r}") from exc
    if not amount.is_finite() or amount < 0:
        raise InvalidAmount("a budget amount must be zero or more")
    owner = {"project": project} if project is not None else {"api_key": api_key}
    if (project or api_key).org_id != org.pk:
        raise ValueError("the budget's owner belongs to another organization")
    existing = (
        Budget.objects.select_for_update()
        .filter(currency=currency, removed_at__isnull=True, **owner)
        .first()
    )
    values = {"amount": amount, "period": period}
    if soft_threshold is not None:
        values["soft_threshold"] = Decimal(str(soft_threshold))
    if existing is None:
        budget = Budget.objects.create(org=org, currency=currency, **owner, **values)
        audit_record(
            org=org, actor=actor, action="budget.create", target=budget, changes=_describe(budget)
        )
        return budget
    before = _describe(existing)
    for field, value in values.items():
        setattr(existing, field, value)
    existing.save(update_fields=list(values))
    audit_record(
        org=org,
        actor=actor,
        action="budget.update",
        target=existing,
        changes={"before": before, "after": _describe(existing)},
    )
    return existing


def key_budget_set_on_create(
    *, api_key: Any, currency: str, amount: Decimal, period: str, actor: Any | None = None
) -> Budget:
    """The key form's optional budget (registered in `projects.services.KEY_BUDGET_SETTERS`)."""
    return budget_set(
        org=api_key.project.org,
        currency=currency,
        amount=amount,
        period=period,
        api_key=api_key,
        actor=actor,
    )


@transaction.atomic
def budget_remove(*, budget: Budget, actor: Any | None = None) -> Budget:
    """Stop applying a budget; its counters stay for history (pending holds settle normally)."""
    if budget.removed_at is None:
        budget.removed_at = timezone.now()
        budget.save(update_fields=["removed_at"])
        audit_record(
            org=budget.org,
            actor=actor,
            action="budget.remove",
            target=budget,
            changes=_describe(budget),
        )
    return budget


def _describe(budget: Budget) -> dict:
    return {
        "scope": "key" if budget.api_key_id else "project",
        "owner": budget.api_key_id or budget.project_id,
        "currency": budget.currency,
        "amount": str(budget.amount),
        "period": budget.period,
        "soft_threshold": str(budget.soft_threshold),
    }


def counter_for(*, budget: Budget, moment: datetime) -> BudgetCounter:
    """The counter of the period containing `moment`, created on first use (race-safe)."""
    start = period_start(budget.period, moment)
    counter = BudgetCounter.objects.filter(budget=budget, period_start=start).first()
    if counter is not None:
        return counter
    try:
        with transaction.atomic():
            return BudgetCounter.objects.create(budget=budget, period_start=start)
    except IntegrityError:
        return BudgetCounter.objects.get(budget=budget, period_start=start)
