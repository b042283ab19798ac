"""The usage page: spend over time (Chart.js) and tables by key, model, route and wallet."""

from __future__ import annotations

from datetime import UTC, date, timedelta

from django.shortcuts import render
from django.utils import timezone

from accounts.decorators import org_required
from ledger.models import UsageKind
from ledger.money import Currency
from ledger.selectors_dashboard import UsageFilter, usage_series, usage_table
from projects.selectors import projects_list

DEFAULT_DAYS = 30
MAX_DAYS = 366
STACKS = {"model": "Model", "key": "API key", "wallet": "Wallet"}


def parse_day(value: str | None) -> date | None:
    """A YYYY-MM-DD query value, or None when missing or malformed (never a 500)."""
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def parse_int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def date_range(request, *, default_days: int = DEFAULT_DAYS) -> tuple[date, date]:
    """`start`/`end` from the query (inclusive, UTC), clamped to a sane window."""
    today = timezone.now().astimezone(UTC).date()
    end = parse_day(request.GET.get("end")) or today
    start = parse_day(request.GET.get("start")) or end - timedelta(days=default_days - 1)
    if start > end:
        start, end = end, start
    if (end - start).days >= MAX_DAYS:
        start = end - timedelta(days=MAX_DAYS - 1)
    return start, end


@org_required
def usage(request):
    start, end = date_range(request)
    kind = request.GET.get("kind") if request.GET.get("kind") in UsageKind.values else None
    currency = request.GET.get("currency")
    currency = currency if currency in Currency.values else Currency.CREDIT
    stack_by = request.GET.get("stack") if request.GET.get("stack") in STACKS else "model"
    flt = UsageFilter(
        start=start, end=end, project_id=parse_int(request.GET.get("project")), kind=kind
    )
    tables = {
        title: usage_table(org=request.org, flt=flt, group_by=group)
        for group, title in (
            ("key", "By API key"),
            ("model", "By model"),
            ("route", "By route"),
            ("wallet", "By wallet"),
            ("endpoint", "By endpoint"),
        )
    }
    return render(
        request,
        "ledger/usage.html",
        {
            "title": "Usage",
            "flt": flt,
            "currency": currency,
            "stack_by": stack_by,
            "stacks": STACKS,
            "kinds": UsageKind.choices,
            "currencies": Currency.choices,
            "projects": projects_list(org=request.org, include_archived=True),
            "series": usage_series(org=request.org, flt=flt, stack_by=stack_by, currency=currency),
            "tables": tables,
        },
    )
