"""Saved by routing: what requests cost beside what the model's first official route would
have charged for the same tokens (`UsageRecord.baseline_cost`, recorded at request time).

Per group and per wallet that paid:
    cost      = what was charged, in that wallet's currency
    baseline  = what the first official (Credit) route would have charged, in USD
    saved     = baseline - cost, only where both are in the same currency (Credit)
    saved_converted = baseline - cost / DISPLAY_FX_USD_CNY for RMB-paid requests, only when
                the operator set that display rate, and labelled as converted
No silent currency conversion: without a rate, RMB rows show their cost and baseline apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Sum
from django.db.models.functions import TruncMonth

from accounts.models import Organization
from ledger.models import UsageRecord, UsageStatus
from ledger.money import ZERO, to_money

GROUPS = {
    "month": "month",
    "model": "model",
    "project": "project__name",
    "key": "api_key__name",
}


@dataclass
class SavingsRow:
    group: str
    wallet: str
    requests: int
    cost: Decimal
    baseline: Decimal
    saved: Decimal | None
    saved_converted: Decimal | None


def savings_get(
    *,
    org: Organization,
    by: str = "month",
    start: datetime | None = None,
    end: datetime | None = None,
    project_id: int | None = None,
    api_key_id: int | None = None,
) -> list[SavingsRow]:
    """Settled requests that have a baseline, grouped by `by` and the wallet that paid."""
    records = UsageRecord.objects.for_org(org).filter(
        status=UsageStatus.SETTLED, baseline_cost__isnull=False
    )
    if start is not None:
        records = records.filter(created_at__gte=start)
    if end is not None:
        records = records.filter(created_at__lt=end)
    if project_id is not None:
        records = records.filter(project_id=project_id)
    if api_key_id is not None:
        records = records.filter(api_key_id=api_key_id)
    if by == "month":
        records = records.annotate(month=TruncMonth("created_at"))
    field = GROUPS[by]
    rows = (
        records.values(field, "wallet")
        .annotate(requests=Count("id"), cost=Sum("cost"), baseline=Sum("baseline_cost"))
        .order_by(field, "wallet")
    )
    fx: Decimal | None = settings.DISPLAY_FX_USD_CNY
    out = []
    for row in rows:
        cost, baseline = row["cost"] or ZERO, row["baseline"] or ZERO
        group = row[field]
        if by == "month" and group is not None:
            group = group.strftime("%Y-%m")
        same = row["wallet"] == "CREDIT"
        out.append(
            SavingsRow(
                group=str(group or "(none)"),
                wallet=row["wallet"],
                requests=row["requests"],
                cost=cost,
                baseline=baseline,
                saved=baseline - cost if same else None,
                saved_converted=(
                    to_money(baseline - cost / fx) if fx and row["wallet"] == "RMB" else None
                ),
            )
        )
    return out


def savings_total(rows: list[SavingsRow]) -> dict:
    """Totals of `rows`: per paying wallet, and the USD saving (converted part labelled)."""
    by_wallet: dict[str, dict] = {}
    for row in rows:
        total = by_wallet.setdefault(
            row.wallet, {"requests": 0, "cost": ZERO, "baseline": ZERO, "saved": None}
        )
        total["requests"] += row.requests
        total["cost"] += row.cost
        total["baseline"] += row.baseline
        if row.saved is not None:
            total["saved"] = (total["saved"] or ZERO) + row.saved
        if row.saved_converted is not None:
            total["saved_converted"] = total.get("saved_converted", ZERO) + row.saved_converted
    return by_wallet
