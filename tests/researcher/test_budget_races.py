"""A run's budget holds under any timing: with ordinary API traffic hammering the same
project (and its budget) while the run executes on a real worker, the run never spends above
its budget, the project never above its own, and reconcile passes."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from django.db import connections

from ledger.models import BudgetCounter, UsageRecord
from ledger.services.budgets import budget_set
from researcher.models import ResearchStep
from researcher.services import run_budget_counter, run_create
from routing.errors import GatewayError
from tests.researcher.conftest import (
    api_call,
    assert_reconciled,
    make_tenant,
    research_routes,
    run_body,
    run_status,
    wait_for,
    wallet,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_small_run_budget_holds_while_api_traffic_hits_the_same_project(upstream, worker):
    t = make_tenant()
    research_routes(upstream.base_url)
    upstream.prompt_tokens, upstream.completion_tokens = 400, 200  # 0.8 CREDIT a request
    project_limit = Decimal("90")
    budget_set(
        org=t.org, currency="CREDIT", amount=project_limit, period="month", project=t.project
    )
    before = wallet(t.org).posted
    run, _ = run_create(
        org_id=t.org.pk,
        project_id=t.project.pk,
        data=run_body(depth="deep", budget={"currency": "CREDIT", "amount": "2.5"}),
    )
    refused = []
    stop = threading.Event()

    def traffic():
        try:
            wait_for(lambda: run_status(run.pk) != "queued", timeout=60)
            while not stop.is_set():
                try:
                    api_call(t)
                except GatewayError as exc:
                    refused.append(exc.code)
                    if exc.status == 402:
                        return
                time.sleep(0.05)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=traffic) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: run_status(run.pk) not in ("queued", "running"), timeout=120)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    run.refresh_from_db()
    assert run.status == "stopped_budget", (run.status, run.error)
    charged = sum((s.cost for s in ResearchStep.objects.filter(run=run)), Decimal(0))
    assert run.spent == charged == run_budget_counter(run=run).spent <= run.budget_amount
    project_counter = BudgetCounter.objects.get(budget__project=t.project)
    assert project_counter.spent <= project_limit
    total = sum((r.cost for r in UsageRecord.objects.filter(org=t.org)), Decimal(0))
    assert before - wallet(t.org).posted == total == project_counter.spent
    assert_reconciled()
