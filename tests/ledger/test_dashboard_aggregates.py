"""Usage and overview figures: per-day aggregates (closed days cached) add up exactly."""

from __future__ import annotations

from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from ledger.selectors_dashboard import (
    UsageFilter,
    daily_rows,
    overview_get,
    usage_series,
    usage_table,
)
from tests.projects.dashboard_fixtures import *  # noqa: F403
from tests.projects.dashboard_fixtures import usage_add

pytestmark = pytest.mark.django_db


def _days_ago(n: int):
    return timezone.now() - timedelta(days=n)


def test_tables_cover_past_days_and_today_and_keep_kinds_apart(tenant):
    usage_add(
        org=tenant.org,
        project=tenant.project,
        api_key=tenant.key,
        cost="1",
        created_at=_days_ago(3),
    )
    usage_add(
        org=tenant.org, project=tenant.project, kind="researcher", cost="2", created_at=_days_ago(2)
    )
    today = timezone.now().astimezone(UTC).date()
    flt = UsageFilter(start=today - timedelta(days=6), end=today)
    for _ in range(2):  # the second pass reads closed days from the cache
        rows = usage_table(org=tenant.org, flt=flt, group_by="wallet")
        totals = {(r["kind"], r["wallet"]): r["cost"] for r in rows}
        assert totals == {
            ("api", "CREDIT"): Decimal("1.25"),
            ("researcher", "CREDIT"): Decimal("2"),
        }
    by_key = usage_table(org=tenant.org, flt=flt, group_by="key")
    assert any(r["label"].startswith("main") and r["requests"] == 2 for r in by_key)


def test_today_is_always_read_live(tenant):
    today = timezone.now().astimezone(UTC).date()
    flt = UsageFilter(start=today - timedelta(days=3), end=today)
    before = usage_table(org=tenant.org, flt=flt, group_by="model")[0]["requests"]
    usage_add(org=tenant.org, project=tenant.project, api_key=tenant.key)
    after = usage_table(org=tenant.org, flt=flt, group_by="model")[0]["requests"]
    assert after == before + 1


def test_series_has_one_point_per_day_as_decimal_strings(tenant):
    usage_add(org=tenant.org, project=tenant.project, cost="0.1", created_at=_days_ago(1))
    today = timezone.now().astimezone(UTC).date()
    flt = UsageFilter(start=today - timedelta(days=4), end=today)
    series = usage_series(org=tenant.org, flt=flt, stack_by="model", currency="CREDIT")
    assert len(series["labels"]) == 5
    data = series["datasets"][0]["data"]
    assert data[-1] == "0.25" and data[-2] == "0.1"


def test_overview_forecast_uses_the_last_seven_full_days(tenant):
    usage_add(org=tenant.org, project=tenant.project, cost="7", created_at=_days_ago(2))
    overview = overview_get(org=tenant.org)
    credit = next(f for f in overview.forecast if f["currency"] == "CREDIT")
    assert credit["burn_per_day"] == Decimal("1")
    assert credit["days_left"] == Decimal("92.8")  # (100 - 0.25 - 7) / 1
    assert overview.spend_today["CREDIT"] == Decimal("0.25")


def test_daily_rows_fills_every_day_of_the_range(tenant):
    today = timezone.now().astimezone(UTC).date()
    rows = daily_rows(
        org=tenant.org, start=today - timedelta(days=9), end=today, dims=("wallet",), filters={}
    )
    assert sorted(rows) == [today - timedelta(days=n) for n in range(9, -1, -1)]


def test_cache_warming_runs_the_default_views(tenant):
    from ledger.selectors_dashboard import dashboard_cache_warm

    dashboard_cache_warm(org=tenant.org)
