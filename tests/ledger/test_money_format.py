"""One money format: a symbol, small amounts keep their significant digits, totals two
decimals, never E notation (pages, admin and chart data alike)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledger.money import money_format, wallet_name
from tests.projects.dashboard_fixtures import *  # noqa: F403

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("value", "currency", "total", "shown"),
    [
        (Decimal("0E-10"), "CREDIT", False, "$0.00"),
        (Decimal("-0.0000319500000000000"), "CREDIT", False, "-$0.00003195"),
        (Decimal("6.000000E-6"), "RMB", False, "¥0.000006"),
        (Decimal("1234.5"), "RMB", False, "¥1,234.50"),
        (Decimal("1234.5678"), "CREDIT", True, "$1,234.57"),
        (Decimal("0.0004"), "CREDIT", True, "<$0.01"),
        (Decimal("1E+2"), None, False, "100.00"),
    ],
)
def test_money_format(value, currency, total, shown):
    assert money_format(value, currency, total=total) == shown


def test_wallets_have_one_name_each():
    assert (wallet_name("CREDIT"), wallet_name("RMB")) == ("Credit (USD)", "RMB (CNY)")


def test_chart_series_never_carry_exponents(tenant):
    from datetime import timedelta

    from django.utils import timezone

    from ledger.selectors_dashboard import UsageFilter, usage_series
    from tests.projects.dashboard_fixtures import usage_add

    usage_add(org=tenant.org, project=tenant.project, api_key=tenant.key, cost="0.000006")
    today = timezone.now().date()
    flt = UsageFilter(start=today - timedelta(days=3), end=today)
    series = usage_series(org=tenant.org, flt=flt, stack_by="model", currency="CREDIT")
    values = [v for d in series["datasets"] for v in d["data"]]
    assert "0.250006" in values and not any("E" in v for v in values)
    assert series["symbol"] == "$"
