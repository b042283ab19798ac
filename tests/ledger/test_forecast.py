"""Forecasts from seeded usage records, checked against hand-computed values to the unit.

The clock: Tuesday 2026-03-31 12:00 UTC. ISO week from Monday 03-30, month from 03-01, the
7-full-day window from 03-24 00:00. Half of today is gone: elapsed = 7.5 days.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from accounts.models import Role
from ledger.models import Budget, BudgetCounter, UsageRecord
from ledger.selectors_forecast import forecast_get, runs_out_at
from projects.services import key_create
from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory
from tests.ledger.ledger_helpers import fund

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)


def _record(org, project, api_key, when, cost, wallet="CREDIT", status="settled"):
    return UsageRecord.objects.create(
        request_id=f"req_{uuid.uuid4().hex[:16]}",
        org=org,
        project=project,
        api_key=api_key,
        model="gpt-4o-mini",
        wallet=wallet,
        cost=Decimal(cost),
        status=status,
        created_at=when,
    )


@pytest.fixture
def seeded():
    org = OrganizationFactory(price_multiplier=Decimal("1.5"))
    project = ProjectFactory(org=org, name="prod")
    key = key_create(project=project, name="web").api_key
    other = ProjectFactory(org=org, name="other")
    at = lambda *a: datetime(*a, tzinfo=UTC)  # noqa: E731
    _record(org, project, key, at(2026, 3, 23, 23, 59, 59), "5.00")  # before the window
    _record(org, project, key, at(2026, 3, 24, 0, 0, 0), "1.00")  # first second of it
    _record(org, project, key, at(2026, 3, 29, 10), "2.00")  # last week
    _record(org, project, key, at(2026, 3, 30, 8), "3.00")  # this week
    _record(org, project, key, at(2026, 3, 31, 6), "0.50")  # today
    _record(org, project, key, at(2026, 3, 31, 1), "7.00", wallet="RMB")
    _record(org, project, key, at(2026, 3, 31, 2), "0", wallet="", status="failed")
    _record(org, other, None, at(2026, 3, 31, 3), "100.00")  # another project
    return org, project, key


def test_project_forecast_pace_and_projections_equal_the_hand_computed_values(seeded):
    org, project, _ = seeded
    forecast = forecast_get(org=org, project_id=project.pk, now=NOW)
    credit = forecast.wallet("CREDIT")
    assert forecast.window_days == 7
    assert credit.spent == Decimal("6.50")  # 1 + 2 + 3 + 0.5
    assert credit.daily_pace == Decimal("0.8666666667")  # 6.5 / 7.5
    # today: 0.5 so far + pace x 0.5 day
    assert credit.projected["day"] == Decimal("0.9333333334")
    # week: 3 + 0.5 so far + pace x 5.5 days (rest of today and 04-01 .. 04-05)
    assert credit.projected["week"] == Decimal("8.2666666669")
    # month: 5 + 1 + 2 + 3 + 0.5 so far + pace x 0.5 day
    assert credit.projected["month"] == Decimal("11.9333333334")
    rmb = forecast.wallet("RMB")
    assert rmb.spent == Decimal("7.00") and rmb.daily_pace == Decimal("0.9333333333")


def test_a_shorter_window_changes_the_pace(seeded):
    org, project, _ = seeded
    credit = forecast_get(org=org, project_id=project.pk, days=1, now=NOW).wallet("CREDIT")
    assert credit.spent == Decimal("3.50")  # 03-30 and today
    assert credit.daily_pace == Decimal("2.3333333333")  # 3.5 / 1.5


def test_budgets_run_out_inside_their_period_or_not_this_period(seeded):
    org, project, key = seeded
    month = Budget.objects.create(
        org=org, project=project, currency="CREDIT", amount=20, period="month"
    )
    BudgetCounter.objects.create(budget=month, period_start=date(2026, 3, 1), spent=Decimal("11.5"))
    week = Budget.objects.create(org=org, api_key=key, currency="CREDIT", amount=6, period="week")
    BudgetCounter.objects.create(budget=week, period_start=date(2026, 3, 30), spent=Decimal("3.5"))

    project_budget = forecast_get(org=org, project_id=project.pk, now=NOW).wallet("CREDIT").budgets
    assert [(b.id, b.limit, b.spent, b.remaining) for b in project_budget] == [
        (month.pk, Decimal("20"), Decimal("11.5"), Decimal("8.5"))
    ]
    # 8.5 / 0.8666666667 = 9.8 days: after 04-01, so not this month
    assert project_budget[0].runs_out_at is None

    key_budget = forecast_get(org=org, api_key_id=key.pk, now=NOW).wallet("CREDIT").budgets[0]
    assert key_budget.remaining == Decimal("2.5")
    # 2.5 / 0.8666666667 = 2.8846153845 days = 2 d 21 h 13 min 50.8 s after 03-31 12:00
    assert key_budget.runs_out_at == datetime(2026, 4, 3, 9, 13, 50, tzinfo=UTC)
    assert "web (key)" in key_budget.name and "per week" in key_budget.name


def test_runs_out_at_across_a_month_boundary():
    late = datetime(2026, 1, 31, 18, 0, tzinfo=UTC)
    # 0.2 days (4.8 h) at 1/day: 22:48 the same day, inside January
    assert runs_out_at(remaining=Decimal("0.2"), pace=Decimal(1), now=late, period="month") == (
        datetime(2026, 1, 31, 22, 48, tzinfo=UTC)
    )
    # 0.3 days: 01:12 on Feb 1, the next month: not this period
    assert runs_out_at(remaining=Decimal("0.3"), pace=Decimal(1), now=late, period="month") is None
    # a total budget has no period end
    assert runs_out_at(remaining=Decimal("3"), pace=Decimal(1), now=late, period="total") == (
        datetime(2026, 2, 3, 18, 0, tzinfo=UTC)
    )
    assert runs_out_at(remaining=Decimal("3"), pace=Decimal(0), now=late, period="total") is None


def test_organization_wallets_get_days_of_balance_left(seeded):
    org, _, _ = seeded
    fund(org, "CREDIT", "100")
    credit = forecast_get(org=org, now=NOW).wallet("CREDIT")
    assert credit.spent == Decimal("106.50")  # both projects
    assert credit.daily_pace == Decimal("14.2000000000")  # 106.5 / 7.5
    assert credit.available == Decimal("100") and credit.days_left == Decimal("7.0")


def test_forecast_api_answers_the_documented_shape_for_projects_and_keys(seeded):
    org, project, key = seeded
    member = MembershipFactory(org=org, role=Role.VIEWER)
    client = APIClient()
    client.force_authenticate(member.user)
    body = client.get(f"/api/projects/{project.pk}/forecast/?days=3").json()
    assert body["window_days"] == 3
    assert {w["currency"] for w in body["wallets"]} == {"CREDIT", "RMB"}
    credit = next(w for w in body["wallets"] if w["currency"] == "CREDIT")
    assert set(credit) == {"currency", "spent", "daily_pace", "projected", "budgets"}
    assert set(credit["projected"]) == {"day", "week", "month"}
    assert isinstance(credit["spent"], str) and Decimal(credit["spent"]) >= 0
    assert client.get(f"/api/keys/{key.pk}/forecast/").status_code == 200
    assert client.get(f"/api/projects/{project.pk}/forecast/?days=abc").status_code == 400
    assert client.get(f"/api/projects/{project.pk}/forecast/?days=0").status_code == 400


def test_another_organizations_project_forecast_is_a_404(seeded):
    _, project, key = seeded
    stranger = MembershipFactory(org=OrganizationFactory(), role=Role.OWNER)
    client = APIClient()
    client.force_authenticate(stranger.user)
    assert client.get(f"/api/projects/{project.pk}/forecast/").status_code == 404
    assert client.get(f"/api/keys/{key.pk}/forecast/").status_code == 404
