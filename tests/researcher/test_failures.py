"""Upstream failures: retried and fallen back from as for API traffic; a run whose steps all
fail ends `failed` with the upstream's reason, charged nothing, reconcile clean; a step past
its time limit is stopped and its hold released."""

from __future__ import annotations

import pytest
from django.test import override_settings

from ledger.models import UsageRecord
from researcher.execution import run_execute
from researcher.models import ResearchStep
from researcher.services import run_create
from tests.researcher.conftest import (
    apply,
    assert_reconciled,
    make_tenant,
    research_routes,
    run_body,
    wallet,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _create(t, **overrides):
    run, _ = run_create(
        org_id=t.org.pk, project_id=t.project.pk, data=run_body(**overrides), enqueue=False
    )
    return run


def test_a_run_whose_steps_all_fail_ends_failed_with_the_upstreams_reason(upstream):
    t = make_tenant()
    research_routes(upstream.base_url)
    upstream.mode = "500"
    before = wallet(t.org).posted
    run = _create(t)
    assert run_execute(run_id=run.pk) == "failed"
    run.refresh_from_db()
    assert run.error.startswith("the plan step failed: Every route failed; last error:")
    steps = list(ResearchStep.objects.filter(run=run))
    assert [s.status for s in steps] == ["failed", "failed"]  # tried twice
    assert run.spent == 0 and wallet(t.org).posted == before
    assert all(r.status == "failed" for r in UsageRecord.objects.filter(researcher_run_id=run.pk))
    assert "The run failed" in run.report
    assert_reconciled()


def test_steps_fall_back_to_the_next_route_like_api_traffic(upstream, upstream_b):
    t = make_tenant()
    apply(
        [
            {"name": "first", "base_url": upstream.base_url},
            {"name": "second", "base_url": upstream_b.base_url},
        ],
        [
            {
                "name": "researcher-model",
                "routes": [
                    {"upstream": "first", "model": "m", "price": {"input": "1", "output": "2"}},
                    {"upstream": "second", "model": "m", "price": {"input": "1", "output": "2"}},
                ],
            }
        ],
    )
    upstream.mode = "503"
    run = _create(t)
    assert run_execute(run_id=run.pk) == "succeeded"
    steps = list(ResearchStep.objects.filter(run=run))
    assert {s.route for s in steps} == {"second/m"}
    first = UsageRecord.objects.get(request_id=steps[0].request_id)
    assert first.fallback and first.attempts[0]["upstream"] == "first"  # then cooled down
    assert_reconciled()


@override_settings(RESEARCHER_STEP_TIMEOUT_SECONDS=1)
def test_a_step_past_its_time_limit_is_stopped_and_its_hold_released(upstream):
    t = make_tenant()
    research_routes(upstream.base_url)
    upstream.mode = "hang"
    before = wallet(t.org).posted
    run = _create(t)
    assert run_execute(run_id=run.pk) == "failed"
    run.refresh_from_db()
    assert "time limit" in run.error
    assert wallet(t.org).posted == before
    assert_reconciled()
