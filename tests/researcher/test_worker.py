"""Runs on a real Celery worker (a `celery -A config worker` subprocess on Redis and the test
database) with a mock upstream over HTTP: a run completes; a cancelled run and a worker killed
mid-step leave no open hold, reconcile passes and no step is charged twice."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledger.models import Hold, HoldStatus, UsageRecord
from researcher.execution import runs_recover
from researcher.models import ResearchRun, ResearchStep
from researcher.services import run_budget_counter, run_cancel, run_create
from tests.researcher.conftest import (
    assert_reconciled,
    make_tenant,
    research_routes,
    run_body,
    run_status,
    wait_for,
    wallet,
    worker_start,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _start(t, **overrides) -> ResearchRun:
    run, _ = run_create(org_id=t.org.pk, project_id=t.project.pk, data=run_body(**overrides))
    return run


def _pending_holds(run) -> list[Hold]:
    counter = run_budget_counter(run=run)
    return list(Hold.objects.filter(run_counter_id=counter.pk, status=HoldStatus.PENDING))


def _analysis_in_flight(run) -> bool:
    analysing = ResearchStep.objects.filter(run=run, name="analyse", status="running").first()
    return bool(analysing) and any(
        h.request_id == analysing.request_id for h in _pending_holds(run)
    )


def test_a_run_on_a_real_worker_completes_and_charges_add_up(upstream, worker):
    t = make_tenant()
    research_routes(upstream.base_url)
    before = wallet(t.org).posted
    run = _start(t, depth="standard")
    wait_for(lambda: run_status(run.pk) in ("succeeded", "failed"), timeout=90)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    costs = [s.cost for s in ResearchStep.objects.filter(run=run)]
    assert len(costs) == 4 and run.spent == sum(costs, Decimal(0))
    assert before - wallet(t.org).posted == run.spent == run_budget_counter(run=run).spent
    assert run.report.strip()
    assert_reconciled()


def test_cancelling_a_running_run_stops_its_step_and_releases_the_hold(upstream, worker):
    t = make_tenant()
    research_routes(upstream.base_url)
    upstream.script = ["ok", "hang"]  # the plan answers, the analysis hangs
    before = wallet(t.org).posted
    run = _start(t)
    wait_for(lambda: _analysis_in_flight(run), timeout=60)  # the analysis is in flight
    run_cancel(run=ResearchRun.objects.get(pk=run.pk))
    wait_for(lambda: run_status(run.pk) == "cancelled", timeout=30)
    run.refresh_from_db()
    steps = list(ResearchStep.objects.filter(run=run))
    assert [(s.name, s.status) for s in steps] == [("plan", "succeeded"), ("analyse", "cancelled")]
    assert steps[1].cost == 0 and run.spent == steps[0].cost
    assert before - wallet(t.org).posted == run.spent
    assert "Cancelled" in run.report
    assert_reconciled()


def test_a_worker_killed_mid_step_loses_nothing_and_the_run_resumes(upstream, queue_on_redis):
    t = make_tenant()
    research_routes(upstream.base_url)
    upstream.script = ["ok", "hang"]
    before = wallet(t.org).posted
    first = worker_start()
    try:
        run = _start(t)
        wait_for(lambda: _analysis_in_flight(run), timeout=60)
    finally:
        first.kill()  # SIGKILL mid-step: its hold is still pending
    assert len(_pending_holds(run)) == 1
    wait_for(lambda: runs_recover()["requeued"] == 1, timeout=15)  # once the lease lapsed
    assert _pending_holds(run) == []  # released now, not at the hold's TTL
    second = worker_start()
    try:
        wait_for(lambda: run_status(run.pk) in ("succeeded", "failed"), timeout=90)
    finally:
        second.stop()
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    steps = list(ResearchStep.objects.filter(run=run))
    assert [(s.name, s.attempt, s.status) for s in steps] == [
        ("plan", 1, "succeeded"),
        ("analyse", 1, "failed"),
        ("analyse", 2, "succeeded"),
        ("report", 1, "succeeded"),
    ]
    assert steps[1].cost == 0
    records = UsageRecord.objects.filter(researcher_run_id=run.pk)
    assert records.count() == 4  # one per request, the lost one recorded as failed at 0
    assert sorted(r.request_id for r in records) == sorted(s.request_id for s in steps)
    settled = sum((r.cost for r in records if r.status == "settled"), Decimal(0))
    assert run.spent == settled == before - wallet(t.org).posted
    assert_reconciled()
