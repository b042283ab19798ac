"""A hold reserved just before midnight UTC and captured after it lands in the period it was
reserved in; the next period starts fresh. The clock is the one the ledger code reads
(`django.utils.timezone.now`), set by the test."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from ledger.errors import BudgetExceeded
from ledger.models import BudgetCounter
from ledger.selectors import budgets_status
from ledger.services.budgets import budget_set
from ledger.services.holds import hold_capture, hold_place
from projects.services import key_create
from tests.ledger.ledger_helpers import assert_reconciled, fund

pytestmark = pytest.mark.django_db

BEFORE = datetime(2026, 3, 31, 23, 59, 59, 999000, tzinfo=UTC)  # last moment of a day and month
AFTER = datetime(2026, 4, 1, 0, 0, 0, 1000, tzinfo=UTC)


@pytest.fixture
def clock(monkeypatch):
    state = {"now": BEFORE}
    monkeypatch.setattr(timezone, "now", lambda: state["now"])
    return state


def test_a_capture_after_midnight_lands_in_the_period_it_was_reserved_in(org, project, clock):
    fund(org, "CREDIT", "50")
    api_key = key_create(project=project, name="k").api_key
    budget_set(org=org, project=project, currency="CREDIT", amount=Decimal("5"), period="day")
    budget_set(org=org, api_key=api_key, currency="CREDIT", amount=Decimal("20"), period="month")

    hold = hold_place(
        org_id=org.pk,
        currency="CREDIT",
        amount=Decimal("4"),
        project_id=project.pk,
        api_key_id=api_key.pk,
    )
    clock["now"] = AFTER
    hold_capture(hold_id=hold.pk, amount=Decimal("3"))

    day_march = BudgetCounter.objects.get(budget__project=project, period_start=date(2026, 3, 31))
    month_march = BudgetCounter.objects.get(budget__api_key=api_key, period_start=date(2026, 3, 1))
    assert (day_march.spent, day_march.reserved) == (Decimal("3"), Decimal("0"))
    assert (month_march.spent, month_march.reserved) == (Decimal("3"), Decimal("0"))
    assert not BudgetCounter.objects.filter(period_start__gte=date(2026, 4, 1)).exists()

    # The new day and month start empty: the whole day budget is available again.
    status = {
        row["scope"]: row for row in budgets_status(project_id=project.pk, api_key_id=api_key.pk)
    }
    assert status["project"]["spent"] == 0 and status["project"]["remaining"] == Decimal("5")
    assert status["key"]["spent"] == 0
    fresh = hold_place(
        org_id=org.pk,
        currency="CREDIT",
        amount=Decimal("5"),
        project_id=project.pk,
        api_key_id=api_key.pk,
    )
    assert BudgetCounter.objects.get(pk=fresh.project_counter_id).period_start == date(2026, 4, 1)
    assert BudgetCounter.objects.get(pk=fresh.key_counter_id).period_start == date(2026, 4, 1)
    assert_reconciled()


def test_a_hold_before_midnight_still_counts_against_its_own_day(org, project, clock):
    fund(org, "CREDIT", "50")
    budget_set(org=org, project=project, currency="CREDIT", amount=Decimal("5"), period="day")
    hold_place(org_id=org.pk, currency="CREDIT", amount=Decimal("4"), project_id=project.pk)
    with pytest.raises(BudgetExceeded):  # same day: 4 + 2 > 5
        hold_place(org_id=org.pk, currency="CREDIT", amount=Decimal("2"), project_id=project.pk)
    clock["now"] = AFTER
    hold_place(org_id=org.pk, currency="CREDIT", amount=Decimal("2"), project_id=project.pk)


@pytest.mark.parametrize(
    "period,moment,start",
    [
        ("week", datetime(2026, 3, 29, 23, 59, 59, tzinfo=UTC), date(2026, 3, 23)),  # Sunday
        ("week", datetime(2026, 3, 30, 0, 0, 0, tzinfo=UTC), date(2026, 3, 30)),  # Monday
        ("month", datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC), date(2026, 2, 1)),
        ("total", datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC), date(1970, 1, 1)),
    ],
)
def test_periods_are_calendar_periods_in_utc(org, project, clock, period, moment, start):
    fund(org, "CREDIT", "5")
    budget_set(org=org, project=project, currency="CREDIT", amount=Decimal("5"), period=period)
    clock["now"] = moment
    hold = hold_place(org_id=org.pk, currency="CREDIT", amount=Decimal("1"), project_id=project.pk)
    assert BudgetCounter.objects.get(pk=hold.project_counter_id).period_start == start
