"""Reads for the operator overview in admin: revenue, upstream cost and margin, upstream health,
the largest organizations and researcher runs over a date range (UTC, end inclusive).

Revenue is what usage records charged (`cost`, after the organization's price multiplier).
Upstream cost is the same tokens at the route's prices before the multiplier: route prices
are what the upstream charges us, and the multiplier is our markup. Both are snapshots on
the usage record, so later price changes never rewrite these figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.db.models import (
    Count,
    DecimalField,
    ExpressionWrapper,
    F,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce, Least, TruncDate

from ledger.models import AccountKind, Posting, UsageKind, UsageRecord, UsageStatus
from ledger.money import MONEY_DIGITS, MONEY_PLACES, TOKENS_PER_PRICE_UNIT, ZERO, to_money

MONEY = DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
TOP_ORGS = 10


@dataclass(frozen=True)
class DateRange:
    start: date
    end: date  # inclusive

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=UTC)

    @property
    def until(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=UTC)


def date_range_default(today: date | None = None) -> DateRange:
    today = today or datetime.now(UTC).date()
    return DateRange(start=today - timedelta(days=29), end=today)


def _upstream_cost() -> Coalesce:
    """The request's cost at the route's prices: every price part, as computed when it ran
    (`price_parts.upstream_cost`); records from before price parts, from their three prices."""
    cached = Least(F("cached_tokens"), F("prompt_tokens"))
    raw = (
        (F("prompt_tokens") - cached) * F("price_input")
        + cached * F("price_cached_input")
        + F("completion_tokens") * F("price_output")
    )
    return Coalesce(
        Cast(KT("price_parts__upstream_cost"), MONEY),
        ExpressionWrapper(raw / Value(TOKENS_PER_PRICE_UNIT), output_field=MONEY),
        output_field=MONEY,
    )


def drift_threshold() -> Decimal:
    return Decimal(str(getattr(settings, "UPSTREAM_COST_DRIFT_THRESHOLD", "0.02")))


def cost_drift_by_upstream_day(*, window: DateRange) -> list[dict]:
    """Per upstream, wallet and UTC day, over the requests whose upstream reported its own
    cost: what our prices computed, what it reported, the difference (reported − computed) and
    whether it passes `UPSTREAM_COST_DRIFT_THRESHOLD` (a fraction of the computed cost)."""
    rows = (
        _settled(window)
        .filter(reported_cost__isnull=False)
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("upstream", "wallet", "day")
        .annotate(
            requests=Count("id"),
            computed=Coalesce(Sum(_upstream_cost()), Value(ZERO), output_field=MONEY),
            reported=Coalesce(Sum("reported_cost"), Value(ZERO), output_field=MONEY),
        )
        .order_by("-day", "upstream", "wallet")
    )
    threshold = drift_threshold()
    out = []
    for row in rows:
        computed, reported = to_money(row["computed"]), to_money(row["reported"])
        difference = reported - computed
        rate = (difference / computed) if computed else None
        alert = abs(rate) > threshold if rate is not None else reported > 0
        out.append(
            {
                **row,
                "computed": computed,
                "reported": reported,
                "difference": difference,
                "difference_pct": rate * 100 if rate is not None else None,
                "alert": alert,
            }
        )
    return out


def _money_totals() -> dict:
    return {
        "requests": Count("id"),
        "revenue": Coalesce(Sum("cost"), Value(ZERO), output_field=MONEY),
        "upstream_cost": Coalesce(Sum(_upstream_cost()), Value(ZERO), output_field=MONEY),
    }


def _with_margin(rows) -> list[dict]:
    out = []
    for row in rows:
        revenue, cost = to_money(row["revenue"]), to_money(row["upstream_cost"])
        margin = revenue - cost
        rate = (margin / revenue * 100) if revenue else None
        out.append(
            {**row, "revenue": revenue, "upstream_cost": cost, "margin": margin, "margin_pct": rate}
        )
    return out


def _settled(window: DateRange) -> QuerySet[UsageRecord]:
    return UsageRecord.objects.filter(
        created_at__gte=window.since, created_at__lt=window.until, status=UsageStatus.SETTLED
    )


def revenue_by_wallet(*, window: DateRange, by_model: list[dict] | None = None) -> list[dict]:
    """Per wallet; summed from the per-model rows when the caller has them (one scan less)."""
    by_model = by_model if by_model is not None else margin_by_model(window=window)
    totals: dict[str, dict] = {}
    for row in by_model:
        total = totals.setdefault(
            row["wallet"],
            {"wallet": row["wallet"], "requests": 0, "revenue": ZERO, "upstream_cost": ZERO},
        )
        total["requests"] += row["requests"]
        total["revenue"] += row["revenue"]
        total["upstream_cost"] += row["upstream_cost"]
    rows = _with_margin(totals[wallet] for wallet in sorted(totals))
    shortfall = dict(
        Posting.objects.filter(
            account__kind=AccountKind.SHORTFALL,
            transaction__created_at__gte=window.since,
            transaction__created_at__lt=window.until,
        )
        .values_list("currency")
        .annotate(total=Sum("amount"))
    )
    for row in rows:
        row["shortfall"] = -(shortfall.get(row["wallet"]) or ZERO)
    return rows


def margin_by_model(*, window: DateRange) -> list[dict]:
    return _with_margin(
        _settled(window)
        .values("wallet", "model")
        .annotate(**_money_totals())
        .order_by("wallet", "-revenue")
    )


def margin_by_kind(*, window: DateRange) -> list[dict]:
    """API traffic and AI Researcher steps apart, per wallet."""
    return _with_margin(
        _settled(window)
        .values("wallet", "kind")
        .annotate(**_money_totals())
        .order_by("wallet", "kind")
    )


def margin_by_upstream(*, window: DateRange) -> list[dict]:
    return _with_margin(
        _settled(window)
        .values("wallet", "upstream")
        .annotate(**_money_totals(), fallbacks=Count("id", filter=Q(fallback=True)))
        .order_by("wallet", "-revenue")
    )


_ATTEMPTS_SQL = {
    "postgresql": """
        SELECT a.value ->> 'upstream' AS upstream,
               COUNT(*) AS attempts,
               COUNT(*) FILTER (WHERE COALESCE(a.value ->> 'status', '') NOT IN ('ok', '200'))
        FROM ledger_usagerecord u CROSS JOIN LATERAL jsonb_array_elements(
             CASE WHEN jsonb_typeof(u.attempts) = 'array' THEN u.attempts ELSE '[]' END) a
        WHERE u.created_at >= %s AND u.created_at < %s
        GROUP BY 1""",
    "sqlite": """
        SELECT json_extract(a.value, '$.upstream') AS upstream,
               COUNT(*) AS attempts,
               SUM(CASE WHEN COALESCE(CAST(json_extract(a.value, '$.status') AS TEXT), '')
                        NOT IN ('ok', '200') THEN 1 ELSE 0 END)
        FROM ledger_usagerecord u, json_each(u.attempts) a
        WHERE u.created_at >= %s AND u.created_at < %s
        GROUP BY 1""",
}


def upstream_health(*, window: DateRange) -> list[dict]:
    """Per upstream: attempts and how many failed, requests it finally served, and how many
    of those reached it only after a retry or fallback."""
    sql = _ATTEMPTS_SQL.get(connection.vendor, _ATTEMPTS_SQL["postgresql"])
    with connection.cursor() as cursor:
        cursor.execute(sql, [window.since, window.until])
        attempts = {name or "": (total, failed or 0) for name, total, failed in cursor.fetchall()}
    served = {
        row["upstream"]: row
        for row in UsageRecord.objects.filter(
            created_at__gte=window.since, created_at__lt=window.until
        )
        .exclude(upstream="")
        .values("upstream")
        .annotate(served=Count("id"), after_fallback=Count("id", filter=Q(fallback=True)))
    }
    rows = []
    for name in sorted(set(attempts) | set(served)):
        total, failed = attempts.get(name, (0, 0))
        done = served.get(name, {"served": 0, "after_fallback": 0})
        rows.append(
            {
                "upstream": name or "(none)",
                "attempts": total,
                "failures": failed,
                "failure_rate": Decimal(failed * 100) / total if total else None,
                "served": done["served"],
                "after_fallback": done["after_fallback"],
                "fallback_rate": (
                    Decimal(done["after_fallback"] * 100) / done["served"]
                    if done["served"]
                    else None
                ),
            }
        )
    return rows


def largest_organizations(*, window: DateRange, limit: int = TOP_ORGS) -> list[dict]:
    return list(
        _settled(window)
        .values("wallet", "org_id", "org__slug", "org__name")
        .annotate(
            requests=Count("id"),
            revenue=Coalesce(Sum("cost"), Value(ZERO), output_field=MONEY),
        )
        .order_by("-revenue", "org__slug")[:limit]
    )


def researcher_runs(*, window: DateRange) -> list[dict]:
    return list(
        _settled(window)
        .filter(kind=UsageKind.RESEARCHER)
        .values("wallet")
        .annotate(
            runs=Count("researcher_run_id", distinct=True),
            steps=Count("id"),
            spend=Coalesce(Sum("cost"), Value(ZERO), output_field=MONEY),
        )
        .order_by("wallet")
    )


def shortfall_by_upstream(*, window: DateRange) -> list[dict]:
    """Per upstream and wallet: requests that cost more than their hold, and the excess the
    shortfall account absorbed. Holds bound what a request can cost, so each row is an
    upstream that reported more than the limits it was sent allow (or a late capture the
    wallet could not pay): every one is also logged and in the audit log (`ledger.shortfall`,
    `ledger.late_capture`)."""
    rows = (
        Posting.objects.filter(
            account__kind=AccountKind.SHORTFALL,
            transaction__created_at__gte=window.since,
            transaction__created_at__lt=window.until,
        )
        .values("currency", upstream=F("transaction__usage__upstream"))
        .annotate(requests=Count("transaction_id", distinct=True), total=Sum("amount"))
        .order_by("currency", "total")
    )
    return [
        {
            "wallet": row["currency"],
            "upstream": row["upstream"] or "",
            "requests": row["requests"],
            "shortfall": -to_money(row["total"] or ZERO),
        }
        for row in rows
    ]


def operator_overview(*, window: DateRange) -> dict:
    by_model = margin_by_model(window=window)
    return {
        "window": window,
        "wallets": revenue_by_wallet(window=window, by_model=by_model),
        "models": by_model,
        "kinds": margin_by_kind(window=window),
        "upstreams": margin_by_upstream(window=window),
        "health": upstream_health(window=window),
        "shortfalls": shortfall_by_upstream(window=window),
        "organizations": largest_organizations(window=window),
        "researcher": researcher_runs(window=window),
        "drift": cost_drift_by_upstream_day(window=window),
        "drift_threshold_pct": drift_threshold() * 100,
    }
