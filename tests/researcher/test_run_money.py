"""A run's steps go through the engine in process: charges add up to the run's spend, the
wallet's drop and the run budget's counter; small budgets stop at the budget, never above."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledger.models import UsageRecord
from researcher.execution import run_execute
from researcher.models import ResearchRun, ResearchStep
from researcher.services import RunBudgetTooSmall, run_budget_counter, run_create
from tests.researcher.conftest import (
    assert_reconciled,
    make_tenant,
    research_routes,
    run_body,
    wallet,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["statement", "orm"])
def money_path(request, settings):
    """PostgreSQL's one-statement holds, and the ORM path SQLite (`make run`) takes."""
    settings.LEDGER_FAST_PATH = request.param == "statement"
    return request.param


def _create(t, **overrides) -> ResearchRun:
    run, _ = run_create(
        org_id=t.org.pk, project_id=t.project.pk, data=run_body(**overrides), enqueue=False
    )
    return run


def test_a_run_completes_and_its_step_charges_add_up_to_its_spend_and_the_wallet_drop(
    upstream, money_path
):
    t = make_tenant()
    research_routes(upstream.base_url)
    before = wallet(t.org).posted
    run = _create(t, depth="standard")
    assert run_execute(run_id=run.pk) == "succeeded"
    run.refresh_from_db()
    steps = list(ResearchStep.objects.filter(run=run))
    assert [s.name for s in steps] == ["plan", "analyse", "challenge", "report"]
    assert all(s.status == "succeeded" and s.cost > 0 for s in steps)
    total = sum((s.cost for s in steps), Decimal(0))
    assert run.spent == total == before - wallet(t.org).posted
    assert run_budget_counter(run=run).spent == total
    records = UsageRecord.objects.filter(researcher_run_id=run.pk)
    assert {r.kind for r in records} == {"researcher"} and records.count() == 4
    assert "Figures (computed by code" in run.report and "RSI (14)" in run.report
    assert_reconciled()


def test_a_budget_too_small_for_the_first_step_is_refused_with_the_estimate(upstream):
    t = make_tenant()
    research_routes(upstream.base_url)
    with pytest.raises(RunBudgetTooSmall) as err:
        _create(t, budget={"currency": "CREDIT", "amount": "0.0001"})
    assert err.value.code == "run_budget_too_small"
    assert str(err.value.estimate.min) in err.value.message
    assert not ResearchRun.objects.exists()


def test_a_small_budget_stops_the_run_at_the_budget_never_above(upstream, money_path):
    t = make_tenant()
    research_routes(upstream.base_url)
    upstream.prompt_tokens, upstream.completion_tokens = 400, 200  # 0.8 CREDIT a step
    run = _create(t, depth="deep", budget={"currency": "CREDIT", "amount": "2.5"})
    assert run_execute(run_id=run.pk) == "stopped_budget"
    run.refresh_from_db()
    assert run.status == "stopped_budget"
    steps = ResearchStep.objects.filter(run=run, status="succeeded")
    assert 1 <= steps.count() < 5 and steps.last().max_tokens < 1600  # lowered to fit
    assert run.spent == Decimal("0.8") * steps.count() <= run.budget_amount
    assert run_budget_counter(run=run).spent == run.spent
    assert "Stopped at the run budget" in run.report
    assert_reconciled()
