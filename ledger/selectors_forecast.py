"""Forecasts: the pace of spend and where it leads, from settled usage records.

For a scope (a project, an API key, or the whole organization) and each wallet currency:

    window      = the last N full days (UTC) plus today so far         (N = `days`, default 7)
    spent       = settled cost in the window
    daily_pace  = spent / elapsed days, elapsed = N + the fraction of today gone
    projected   = spent so far in the current day / week / month
                  + daily_pace x what is left of that period (in days)
    runs_out_at = now + remaining budget / daily_pace, when that falls inside the budget's
                  current period (else None: "not this period")

Costs are what the records say (the organization's multiplier is already in them), summed
exactly; only the pace divides, and it is rounded to the ledger's 10 places.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import Organization
from ledger.models import Account, AccountKind, Budget, BudgetCounter, UsageRecord, UsageStatus
from ledger.money import ZERO, Currency, to_money
from ledger.periods import period_end, period_start

DEFAULT_WINDOW_DAYS = 7
MAX_WINDOW_DAYS = 366
SECONDS_PER_DAY = Decimal(86400)


@dataclass
class BudgetForecast:
    id: int
    name: str
    period: str
    limit: Decimal
    spent: Decimal
    remaining: Decimal
    runs_out_at: datetime | None


@dataclass
class WalletForecast:
    currency: str
    spent: Decimal
    daily_pace: Decimal
    projected: dict[str, Decimal]  # {"day", "week", "month"}: total for the period at its end
    budgets: list[BudgetForecast] = field(default_factory=list)
    available: Decimal | None = None  # organization scope: the wallet's available balance
    days_left: Decimal | None = None  # organization scope: available / pace (None: no pace)

    @property
    def label(self) -> str:
        return Currency(self.currency).label

    @property
    def suggestions(self) -> dict[str, Decimal]:
        """A budget limit per period that fits this pace (see `budget_suggestion`)."""
        found = {
            p: budget_suggestion(pace=self.daily_pace, period=p) for p in ("day", "week", "month")
        }
        return {p: v for p, v in found.items() if v is not None}


@dataclass
class Forecast:
    window_days: int
    now: datetime
    wallets: list[WalletForecast]

    def wallet(self, currency: str) -> WalletForecast | None:
        return next((w for w in self.wallets if w.currency == currency), None)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _daily_spend(
    *, org: Organization, start: date, project_id: int | None, api_key_id: int | None
) -> dict[tuple[str, date], Decimal]:
    records = UsageRecord.objects.for_org(org).filter(
        status=UsageStatus.SETTLED, created_at__gte=_midnight(start)
    )
    if project_id is not None:
        records = records.filter(project_id=project_id)
    if api_key_id is not None:
        records = records.filter(api_key_id=api_key_id)
    rows = (
        records.annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("wallet", "day")
        .annotate(cost=Sum("cost"))
    )
    return {(row["wallet"], row["day"]): row["cost"] or ZERO for row in rows}


def _budget_name(budget: Budget) -> str:
    owner = budget.api_key or budget.project
    scope = "key" if budget.api_key_id else "project"
    when = "total" if budget.period == "total" else f"per {budget.period}"
    return f"{owner.name} ({scope}) {Currency(budget.currency).label} budget, {when}"


def _budgets(
    *, org: Organization, project_id: int | None, api_key_id: int | None, now: datetime
) -> list[tuple[Budget, Decimal, Decimal]]:
    """Active budgets of the scope with this period's (spent, held)."""
    budgets = Budget.objects.for_org(org).filter(removed_at__isnull=True)
    if api_key_id is not None:
        budgets = budgets.filter(api_key_id=api_key_id)
    elif project_id is not None:
        budgets = budgets.filter(project_id=project_id)
    else:
        return []
    found = list(budgets.select_related("project", "api_key").order_by("currency", "id"))
    starts = {b.pk: period_start(b.period, now) for b in found}
    counters = {
        (c.budget_id, c.period_start): c
        for c in BudgetCounter.objects.filter(
            budget_id__in=list(starts), period_start__in=set(starts.values())
        )
    }
    out = []
    for budget in found:
        counter = counters.get((budget.pk, starts[budget.pk]))
        out.append(
            (budget, counter.spent if counter else ZERO, counter.reserved if counter else ZERO)
        )
    return out


def runs_out_at(
    *, remaining: Decimal, pace: Decimal, now: datetime, period: str
) -> datetime | None:
    """When `remaining` is gone at `pace` per day, if that is before the period ends."""
    if pace <= 0:
        return None
    moment = now + timedelta(seconds=float(remaining / pace * SECONDS_PER_DAY))
    end = period_end(period, period_start(period, now))
    if end is not None and moment >= _midnight(end):
        return None
    return moment.replace(microsecond=0)


def forecast_get(
    *,
    org: Organization,
    project_id: int | None = None,
    api_key_id: int | None = None,
    days: int = DEFAULT_WINDOW_DAYS,
    now: datetime | None = None,
) -> Forecast:
    """The forecast of one scope: a key, a project, or (neither given) the organization."""
    now = (now or timezone.now()).astimezone(UTC)
    days = max(1, min(int(days), MAX_WINDOW_DAYS))
    today = now.date()
    window_start = today - timedelta(days=days)
    week_start = period_start("week", now)
    month_start = period_start("month", now)
    daily = _daily_spend(
        org=org,
        start=min(window_start, week_start, month_start),
        project_id=project_id,
        api_key_id=api_key_id,
    )
    today_fraction = Decimal((now - _midnight(today)).total_seconds()) / SECONDS_PER_DAY
    elapsed = Decimal(days) + today_fraction
    left_today = 1 - today_fraction
    left = {
        "day": left_today,
        "week": Decimal((period_end("week", week_start) - today).days - 1) + left_today,
        "month": Decimal((period_end("month", month_start) - today).days - 1) + left_today,
    }
    starts = {"day": today, "week": week_start, "month": month_start}

    balances = {}
    if project_id is None and api_key_id is None:
        balances = {
            a.currency: a.posted - a.held
            for a in Account.objects.for_org(org).filter(kind=AccountKind.WALLET)
        }
    budgets = _budgets(org=org, project_id=project_id, api_key_id=api_key_id, now=now)

    wallets = []
    for currency in Currency.values:
        spent = sum((c for (w, d), c in daily.items() if w == currency and d >= window_start), ZERO)
        pace = to_money(spent / elapsed)
        projected = {
            name: to_money(
                sum((c for (w, d), c in daily.items() if w == currency and d >= start), ZERO)
                + pace * left[name]
            )
            for name, start in starts.items()
        }
        forecast = WalletForecast(
            currency=currency, spent=spent, daily_pace=pace, projected=projected
        )
        for budget, b_spent, b_held in budgets:
            if budget.currency != currency:
                continue
            remaining = max(budget.amount - b_spent - b_held, ZERO)
            forecast.budgets.append(
                BudgetForecast(
                    id=budget.pk,
                    name=_budget_name(budget),
                    period=budget.period,
                    limit=budget.amount,
                    spent=b_spent,
                    remaining=remaining,
                    runs_out_at=runs_out_at(
                        remaining=remaining, pace=pace, now=now, period=budget.period
                    ),
                )
            )
        if currency in balances:
            forecast.available = balances[currency]
            forecast.days_left = (
                (balances[currency] / pace).quantize(Decimal("0.1")) if pace > 0 else None
            )
        wallets.append(forecast)
    return Forecast(window_days=days, now=now, wallets=wallets)


def budget_suggestion(*, pace: Decimal, period: str) -> Decimal | None:
    """A limit that fits the current pace with 25% headroom, rounded up to 2 decimals."""
    if pace <= 0 or period == "total":
        return None
    length = {"day": 1, "week": 7, "month": 30}[period]
    return (pace * length * Decimal("1.25")).quantize(Decimal("0.01"), rounding="ROUND_CEILING")
