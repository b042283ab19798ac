"""Reads behind the dashboard pages and the management API: overview, usage, ledger, story
and the balance-drop split.

Every function takes the organization and scopes through `for_org`, so a view cannot forget
the tenant filter. Queries are written for a large history (a million usage records):
aggregates group in the database over the `(org, created_at)` range, and lists use keyset
(seek) pagination on `(created_at, id)` instead of OFFSET and COUNT(*).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import Organization
from ledger.models import (
    Account,
    AccountKind,
    Budget,
    BudgetAlert,
    Posting,
    Transaction,
    TransactionKind,
    UsageKind,
    UsageRecord,
    UsageStatus,
)
from ledger.money import CURRENCY_SYMBOL, ZERO, Currency, wallet_name

FORECAST_DAYS = 7
TOP_LIMIT = 5
PAGE_SIZE = 50
CHOICES_SAMPLE = 2000


# --- Time ranges ---------------------------------------------------------------------------


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def range_bounds(*, start: date, end: date) -> tuple[datetime, datetime]:
    """Inclusive calendar days (UTC) as a half-open datetime range."""
    return day_start(start), day_start(end + timedelta(days=1))


def _today() -> date:
    return timezone.now().astimezone(UTC).date()


# --- Daily aggregates (closed days cached) --------------------------------------------------

AGGREGATES = {
    "requests": lambda: Count("id"),
    "failed": lambda: Count("id", filter=Q(status=UsageStatus.FAILED)),
    "prompt_tokens": lambda: Sum("prompt_tokens", default=0),
    "completion_tokens": lambda: Sum("completion_tokens", default=0),
    "cost": lambda: Sum("cost", default=ZERO),
}
DAILY_CACHE_SECONDS = 8 * 24 * 3600
# A day is closed (no more usage records can land in it) this long after its midnight: a
# record's created_at is its insert time, so only clock skew could add to a past day.
CLOSED_AFTER = timedelta(minutes=5)


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def _grouped_by_day(
    *, org: Organization, lower: datetime, upper: datetime, dims: tuple, filters: dict
) -> list[dict]:
    return list(
        UsageRecord.objects.for_org(org)
        .filter(created_at__gte=lower, created_at__lt=upper, **filters)
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day", *dims)
        .annotate(**{name: make() for name, make in AGGREGATES.items()})
        .order_by()
    )


def daily_rows(
    *, org: Organization, start: date, end: date, dims: tuple, filters: dict
) -> dict[date, list[dict]]:
    """Usage aggregated per day and `dims`, for inclusive days, as {day: [row, ...]}.

    Past days never change once closed, so their aggregates are cached (Redis) per org, day,
    dims and filters: a page over a month of a million-row history then queries only today's
    rows and reads the rest from the cache. Missing days are computed in one grouped query.
    """
    now = timezone.now()
    last_closed = (now - CLOSED_AFTER).astimezone(UTC).date() - timedelta(days=1)
    digest = hashlib.sha1(  # noqa: S324 - a cache key, not security
        repr((dims, sorted(filters.items()))).encode()
    ).hexdigest()[:16]

    def key(day: date) -> str:
        return f"dash:v1:{org.pk}:{day.isoformat()}:{digest}"

    closed = _days(start, min(end, last_closed)) if start <= last_closed else []
    try:
        cached = cache.get_many([key(d) for d in closed]) if closed else {}
    except Exception:  # noqa: BLE001 - the cache is an optimisation; the database answers
        cached = {}
    result: dict[date, list[dict]] = {d: cached[key(d)] for d in closed if key(d) in cached}
    missing = [d for d in closed if d not in result]
    if missing:
        low, high = min(missing), max(missing)
        fresh: dict[date, list[dict]] = {d: [] for d in _days(low, high)}
        for row in _grouped_by_day(
            org=org,
            lower=day_start(low),
            upper=day_start(high + timedelta(days=1)),
            dims=dims,
            filters=filters,
        ):
            fresh[row.pop("day")].append(row)
        result.update(fresh)
        with contextlib.suppress(Exception):  # see above: the cache is only an optimisation
            cache.set_many({key(d): rows for d, rows in fresh.items()}, DAILY_CACHE_SECONDS)
    open_start = max(start, last_closed + timedelta(days=1))
    if open_start <= end:
        for d in _days(open_start, end):
            result[d] = []
        for row in _grouped_by_day(
            org=org,
            lower=day_start(open_start),
            upper=day_start(end + timedelta(days=1)),
            dims=dims,
            filters=filters,
        ):
            result.setdefault(row.pop("day"), []).append(row)
    return result


def merge_rows(rows, dims: tuple) -> list[dict]:
    """Sum daily rows over days into one row per `dims` value."""
    merged: dict[tuple, dict] = {}
    for row in rows:
        group = tuple(row[d] for d in dims)
        target = merged.get(group)
        if target is None:
            merged[group] = dict(row)
        else:
            for name in AGGREGATES:
                target[name] += row[name]
    return list(merged.values())


# --- Overview ------------------------------------------------------------------------------


def wallets_of(*, org: Organization) -> list[Account]:
    return list(Account.objects.for_org(org).filter(kind=AccountKind.WALLET).order_by("currency"))


def _settled(org: Organization) -> QuerySet:
    return UsageRecord.objects.for_org(org).filter(status=UsageStatus.SETTLED)


@dataclass
class Overview:
    wallets: list[dict]
    spend_today: dict[str, Decimal]
    spend_month: dict[str, Decimal]
    spend_by_kind: list[dict]  # [{kind, wallet, month}]
    top_projects: list[dict]
    top_keys: list[dict]
    alerts: list[BudgetAlert]
    forecast: list[dict]  # [{currency, burn_per_day, days_left}]


def overview_get(*, org: Organization, now: datetime | None = None) -> Overview:
    """Everything on the overview page from per-day aggregates of settled usage.

    This month and the 7 full days before today come from `daily_rows` (closed days cached),
    so the page queries only today's rows. Burn rate: the last 7 full days' spend / 7.
    """
    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    month_first = today.replace(day=1)
    week_first = today - timedelta(days=FORECAST_DAYS)
    dims = ("wallet", "kind", "project_id", "api_key_id")
    days = daily_rows(
        org=org,
        start=min(month_first, week_first),
        end=today,
        dims=dims,
        filters={"status": UsageStatus.SETTLED},
    )
    spend_today: dict[str, Decimal] = {c: ZERO for c in Currency.values}
    spend_month: dict[str, Decimal] = {c: ZERO for c in Currency.values}
    week_burn: dict[str, Decimal] = {c: ZERO for c in Currency.values}
    by_kind: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    by_project: dict[tuple[Any, str], list] = defaultdict(lambda: [ZERO, 0])
    by_key: dict[tuple[Any, str], list] = defaultdict(lambda: [ZERO, 0])
    for day, rows in days.items():
        for row in rows:
            wallet = row["wallet"] or ""
            if wallet not in spend_month:
                continue  # failed requests carry no wallet and no cost
            if week_first <= day < today:
                week_burn[wallet] += row["cost"]
            if day < month_first:
                continue
            if day == today:
                spend_today[wallet] += row["cost"]
            spend_month[wallet] += row["cost"]
            by_kind[(row["kind"], wallet)] += row["cost"]
            for groups, owner in ((by_project, row["project_id"]), (by_key, row["api_key_id"])):
                groups[(owner, wallet)][0] += row["cost"]
                groups[(owner, wallet)][1] += row["requests"]

    from projects.models import ApiKey, Project

    def top(groups, model) -> list[dict]:
        ranked = sorted(groups.items(), key=lambda item: item[1][0], reverse=True)[:TOP_LIMIT]
        ids = [owner for (owner, _), _ in ranked if owner is not None]
        names = {obj.pk: obj for obj in model.objects.for_org(org).filter(pk__in=ids)}
        return [
            {"object": names.get(owner), "wallet": wallet, "cost": cost, "requests": count}
            for (owner, wallet), (cost, count) in ranked
            if cost > 0
        ]

    wallets = wallets_of(org=org)
    forecast = []
    for wallet in wallets:
        burn = week_burn[wallet.currency] / FORECAST_DAYS
        available = wallet.posted - wallet.held
        days = (available / burn).quantize(Decimal("0.1")) if burn > 0 else None
        forecast.append(
            {
                "currency": wallet.currency,
                "burn_per_day": burn,
                "days_left": days,
                "today": spend_today[wallet.currency],
            }
        )
    return Overview(
        wallets=[
            {
                "currency": w.currency,
                "label": wallet_name(w.currency),
                "posted": w.posted,
                "held": w.held,
                "available": w.posted - w.held,
            }
            for w in wallets
        ],
        spend_today=spend_today,
        spend_month=spend_month,
        # Every kind in every wallet, zeros included: API and Researcher spend always apart.
        spend_by_kind=[
            {
                "kind": kind,
                "kind_label": UsageKind(kind).label,
                "wallet": wallet,
                "month": by_kind.get((kind, wallet), ZERO),
            }
            for kind in UsageKind.values
            for wallet in Currency.values
        ],
        top_projects=top(by_project, Project),
        top_keys=top(by_key, ApiKey),
        alerts=list(
            BudgetAlert.objects.for_org(org)
            .select_related("budget", "budget__project", "budget__api_key")
            .order_by("-created_at")[:10]
        ),
        forecast=forecast,
    )


# --- Usage ---------------------------------------------------------------------------------

USAGE_GROUPS = {
    "model": ("model",),
    "key": ("api_key_id", "api_key__name", "api_key__prefix"),
    "route": ("upstream", "upstream_model"),
    "wallet": ("wallet",),
    "project": ("project_id", "project__name"),
    "endpoint": ("endpoint",),  # chat.completions, messages, responses, embeddings
}


@dataclass(frozen=True)
class UsageFilter:
    start: date
    end: date
    project_id: int | None = None
    kind: str | None = None  # api | researcher | None (both, shown apart)
    wallet: str | None = None


def _usage_filters(flt: UsageFilter) -> dict:
    filters: dict[str, Any] = {}
    if flt.project_id:
        filters["project_id"] = flt.project_id
    if flt.kind:
        filters["kind"] = flt.kind
    if flt.wallet:
        filters["wallet"] = flt.wallet
    return filters


def usage_table(*, org: Organization, flt: UsageFilter, group_by: str) -> list[dict]:
    """Requests, tokens and cost per group, per kind and wallet (API and Researcher apart)."""
    dims = ("kind", "wallet", *USAGE_GROUPS[group_by])
    days = daily_rows(org=org, start=flt.start, end=flt.end, dims=dims, filters=_usage_filters(flt))
    result = merge_rows((row for rows in days.values() for row in rows), dims)
    for row in result:
        row["label"] = _group_label(group_by, row)
    result.sort(key=lambda row: (row["kind"], row["wallet"], -row["cost"], row["label"]))
    return result


def _group_label(group_by: str, row: dict) -> str:
    if group_by == "model":
        return row["model"]
    if group_by == "key":
        if not row["api_key_id"]:
            return "(no key)"
        name = row["api_key__name"]
        return f"{name} ({row['api_key__prefix']}…)" if name else f"{row['api_key__prefix']}…"
    if group_by == "route":
        if not row["upstream"]:
            return "(no route ran)"
        return f"{row['upstream']} · {row['upstream_model']}"
    if group_by == "project":
        return row["project__name"] or "(no project)"
    if group_by == "endpoint":
        return row["endpoint"] or "(none)"
    return row["wallet"] or "(none)"


def usage_series(
    *, org: Organization, flt: UsageFilter, stack_by: str, currency: str
) -> dict[str, Any]:
    """Spend per day stacked by model, key or wallet, in one currency (or per wallet).

    Returns Chart.js-ready data: `labels` (ISO days) and `datasets` [{label, data}] where data
    values are strings (Decimal, never float; the chart parses them).
    """
    group = {"model": "model", "key": "api_key__prefix", "wallet": "wallet"}[stack_by]
    filters = {**_usage_filters(flt), "status": UsageStatus.SETTLED}
    if stack_by != "wallet":
        filters["wallet"] = currency
    per_day = daily_rows(org=org, start=flt.start, end=flt.end, dims=(group,), filters=filters)
    rows = [{**row, "day": day} for day, day_rows in per_day.items() for row in day_rows]
    days = [flt.start + timedelta(days=n) for n in range((flt.end - flt.start).days + 1)]
    index = {d: i for i, d in enumerate(days)}
    series: dict[str, list[Decimal]] = {}
    for row in rows:
        label = row[group] or "(none)"
        values = series.setdefault(label, [ZERO] * len(days))
        if row["day"] in index:
            values[index[row["day"]]] += row["cost"]
    return {
        "labels": [d.isoformat() for d in days],
        # Axis labels carry the wallet's symbol (none when bars mix both wallets).
        "symbol": CURRENCY_SYMBOL.get(currency, "") if stack_by != "wallet" else "",
        "datasets": [
            {"label": label, "data": [format(v.normalize(), "f") if v else "0" for v in values]}
            for label, values in sorted(series.items(), key=lambda kv: -sum(kv[1]))
        ],
    }


# --- Ledger list (keyset) ----------------------------------------------------------------


@dataclass(frozen=True)
class LedgerFilter:
    project_id: int | None = None
    api_key_id: int | None = None
    model: str = ""
    route: str = ""  # upstream name
    wallet: str = ""
    kind: str = ""
    status: str = ""
    start: date | None = None
    end: date | None = None


def requests_filtered(*, org: Organization, flt: LedgerFilter) -> QuerySet:
    qs = UsageRecord.objects.for_org(org)
    if flt.project_id:
        qs = qs.filter(project_id=flt.project_id)
    if flt.api_key_id:
        qs = qs.filter(api_key_id=flt.api_key_id)
    if flt.model:
        qs = qs.filter(model=flt.model)
    if flt.route:
        qs = qs.filter(upstream=flt.route)
    if flt.wallet:
        qs = qs.filter(wallet=flt.wallet)
    if flt.kind:
        qs = qs.filter(kind=flt.kind)
    if flt.status:
        qs = qs.filter(status=flt.status)
    if flt.start:
        qs = qs.filter(created_at__gte=day_start(flt.start))
    if flt.end:
        qs = qs.filter(created_at__lt=day_start(flt.end + timedelta(days=1)))
    return qs.order_by("-created_at", "-id")


def transactions_filtered(*, org: Organization, flt: LedgerFilter) -> QuerySet:
    """Money movements of the organization (usage, top-ups, grants, adjustments...)."""
    qs = Transaction.objects.for_org(org)
    if flt.wallet:
        qs = qs.filter(postings__account__org=org, postings__account__currency=flt.wallet)
    if flt.kind and flt.kind in TransactionKind.values:
        qs = qs.filter(kind=flt.kind)
    elif flt.kind in UsageKind.values:  # API or Researcher usage only
        qs = qs.filter(kind=TransactionKind.USAGE, usage__kind=flt.kind)
    if flt.start:
        qs = qs.filter(created_at__gte=day_start(flt.start))
    if flt.end:
        qs = qs.filter(created_at__lt=day_start(flt.end + timedelta(days=1)))
    return qs.order_by("-created_at", "-id")


@dataclass
class Page:
    rows: list
    next_cursor: str | None
    extra: dict = field(default_factory=dict)


def _cursor_encode(obj) -> str:
    return f"{obj.created_at.isoformat()}|{obj.pk}"


def _cursor_decode(cursor: str) -> tuple[datetime, int] | None:
    try:
        moment, pk = cursor.rsplit("|", 1)
        return datetime.fromisoformat(moment), int(pk)
    except (ValueError, TypeError):
        return None


def keyset_page(*, qs: QuerySet, cursor: str | None, size: int = PAGE_SIZE) -> Page:
    """Rows strictly older than the cursor, newest first; no OFFSET, no COUNT(*)."""
    if cursor:
        decoded = _cursor_decode(cursor)
        if decoded is not None:
            moment, pk = decoded
            qs = qs.filter(Q(created_at__lt=moment) | Q(created_at=moment, id__lt=pk))
    rows = list(qs[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return Page(rows=rows, next_cursor=_cursor_encode(rows[-1]) if more and rows else None)


def request_story(*, org: Organization, request_id: str) -> UsageRecord | None:
    return (
        UsageRecord.objects.for_org(org)
        .select_related("project", "api_key", "transaction", "hold")
        .filter(request_id=request_id)
        .first()
    )


def postings_of(*, transaction_id: int) -> list[Posting]:
    return list(
        Posting.objects.select_related("account", "account__org")
        .filter(transaction_id=transaction_id)
        .order_by("id")
    )


def transaction_of_org(*, org: Organization, transaction_id: int) -> Transaction | None:
    return Transaction.objects.for_org(org).filter(pk=transaction_id).first()


# --- Why did my balance drop? --------------------------------------------------------------

TOPUP_KINDS = (TransactionKind.TOPUP, TransactionKind.GRANT, TransactionKind.REDEMPTION)
ADJUSTMENT_KINDS = (TransactionKind.ADJUSTMENT, TransactionKind.REFUND, TransactionKind.CHARGEBACK)


@dataclass
class BalanceDrop:
    currency: str
    start: date
    end: date
    opening: Decimal
    closing: Decimal
    change: Decimal  # sum of the wallet's postings in the range
    topups: Decimal
    adjustments: Decimal
    usage_total: Decimal
    usage: list[dict]  # [{project, key, model, researcher_run_id, kind, requests, amount}]
    other: Decimal  # usage transactions without a usage record (should be zero)
    parts_total: Decimal

    @property
    def adds_up(self) -> bool:
        return self.parts_total == self.change and self.closing - self.opening == self.change


def balance_drop(*, org: Organization, currency: str, start: date, end: date) -> BalanceDrop:
    """Split a wallet's change over inclusive days into its exact parts (Decimal, no rounding).

    The change is the sum of the wallet's postings whose transaction falls in the range; each
    part is a sum of a disjoint subset of those same postings, so they add up to the cent.
    """
    wallet = Account.objects.for_org(org).get(kind=AccountKind.WALLET, currency=currency)
    lower, upper = range_bounds(start=start, end=end)
    postings = Posting.objects.filter(account=wallet)
    opening = postings.filter(transaction__created_at__lt=lower).aggregate(
        s=Sum("amount", default=ZERO)
    )["s"]
    in_range = postings.filter(
        transaction__created_at__gte=lower, transaction__created_at__lt=upper
    )
    change = in_range.aggregate(s=Sum("amount", default=ZERO))["s"]
    by_kind = {
        row["transaction__kind"]: row["s"]
        for row in in_range.values("transaction__kind").annotate(s=Sum("amount", default=ZERO))
    }
    topups = sum((by_kind.get(k, ZERO) for k in TOPUP_KINDS), ZERO)
    adjustments = sum((by_kind.get(k, ZERO) for k in ADJUSTMENT_KINDS), ZERO)
    usage_rows = list(
        in_range.filter(transaction__kind=TransactionKind.USAGE, transaction__usage__isnull=False)
        .values(
            kind=F("transaction__usage__kind"),
            project=F("transaction__usage__project__name"),
            key=F("transaction__usage__api_key__prefix"),
            key_name=F("transaction__usage__api_key__name"),
            model=F("transaction__usage__model"),
            researcher_run_id=F("transaction__usage__researcher_run_id"),
        )
        .annotate(amount=Sum("amount", default=ZERO), requests=Count("transaction_id"))
        .order_by("amount")
    )
    usage_attributed = sum((row["amount"] for row in usage_rows), ZERO)
    usage_all = by_kind.get(TransactionKind.USAGE, ZERO)
    other = usage_all - usage_attributed
    parts_total = topups + adjustments + usage_attributed + other
    # Kinds we do not know (future ones) land in adjustments so nothing is dropped silently.
    known = set(TOPUP_KINDS) | set(ADJUSTMENT_KINDS) | {TransactionKind.USAGE}
    unknown = sum((v for k, v in by_kind.items() if k not in known), ZERO)
    adjustments += unknown
    parts_total += unknown
    closing = opening + change
    return BalanceDrop(
        currency=currency,
        start=start,
        end=end,
        opening=opening,
        closing=closing,
        change=change,
        topups=topups,
        adjustments=adjustments,
        usage_total=usage_all,
        usage=usage_rows,
        other=other,
        parts_total=parts_total,
    )


# --- Budgets -------------------------------------------------------------------------------


def budgets_active(*, org: Organization) -> QuerySet:
    qs = Budget.objects.for_org(org).filter(researcher_run_id__isnull=True)  # not a run's
    if any(f.name == "removed_at" for f in Budget._meta.get_fields()):
        qs = qs.filter(removed_at__isnull=True)
    return qs


def usage_filter_choices(*, org: Organization) -> dict[str, list]:
    """Suggestions for the ledger's model and route filters, from the latest requests.

    A DISTINCT over a month of a busy org's history costs a scan; the latest few thousand
    rows (one index range) name every model and route in current use.
    """
    recent = list(
        UsageRecord.objects.for_org(org)
        .order_by("-created_at")
        .values_list("model", "upstream")[:CHOICES_SAMPLE]
    )
    return {
        "models": sorted({model for model, _ in recent if model}),
        "routes": sorted({upstream for _, upstream in recent if upstream}),
    }


def dashboard_cache_warm(*, org: Organization) -> None:
    """Compute and cache yesterday's per-day aggregates for the default overview and usage
    views, so the first visit of the day does not pay for a month-long scan. Meant for a
    periodic task shortly after midnight UTC (`CLOSED_AFTER`), one call per active org."""
    today = _today()
    overview_get(org=org)
    flt = UsageFilter(start=today - timedelta(days=29), end=today)
    for group_by in ("key", "model", "route", "wallet"):
        usage_table(org=org, flt=flt, group_by=group_by)
    usage_series(org=org, flt=flt, stack_by="model", currency=Currency.CREDIT)
