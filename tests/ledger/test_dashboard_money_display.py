"""Amounts on the pages are exact and readable: never rounded to cents (a request can cost
0.0002184), never in E notation (100.0000000000 is 100.00, not 1E+2)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from ledger.templatetags.money import money
from tests.projects.dashboard_fixtures import *  # noqa: F403
from tests.projects.dashboard_fixtures import usage_add

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Decimal("100.0000000000"), "100.00"),
        (Decimal("0.0002184000"), "0.0002184"),
        (Decimal("-0.0002184"), "-0.0002184"),
        (Decimal("12.5"), "12.50"),
        (Decimal("0E-10"), "0.00"),
        (Decimal("1") / Decimal("7"), "0.1428571429"),  # storage precision, no more
        (None, ""),
    ],
)
def test_money_shows_every_stored_digit_and_no_exponent(value, shown):
    assert money(value) == shown


def test_balance_drop_shows_whole_amounts_without_exponent(tenant):
    body = tenant.client().get(reverse("ledger:balance_drop") + "?wallet=RMB").content.decode()
    assert "E+" not in body
    assert "50.00" in body  # the RMB funding of the tenant fixture


def test_overview_keeps_api_and_researcher_spend_apart_even_at_zero(tenant):
    usage_add(org=tenant.org, project=tenant.project, api_key=tenant.key, cost="0.0002184")
    body = tenant.client().get(reverse("ledger:overview")).content.decode()
    assert "<td>Researcher</td>" in body
    assert "<td>API</td>" in body
    assert "0.2502184" in body  # 0.25 (fixture) + 0.0002184, not rounded to 0.25
