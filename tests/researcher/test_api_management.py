"""/api/research/runs/: list, create, detail and cancel with session or token auth, in the
OpenAPI schema; roles apply; another organization's run is a 404."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.tokens import api_token_create
from researcher import services
from researcher.models import ResearchRun
from tests.factories import MembershipFactory
from tests.researcher.conftest import make_tenant, research_routes, run_body

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def no_worker(monkeypatch):
    monkeypatch.setattr(services, "run_enqueue", lambda run_id: None)


def _api(org, role="owner", token=False) -> APIClient:
    user = MembershipFactory(org=org, role=role).user
    api = APIClient()
    if token:
        api.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user).secret}")
    else:
        api.force_login(user)
    return api


def test_a_member_creates_reads_lists_and_cancels_a_run(upstream, no_worker):
    t = make_tenant()
    research_routes(upstream.base_url)
    api = _api(t.org, "member", token=True)
    response = api.post(
        "/api/research/runs/", {**run_body(), "project": t.project.pk}, format="json"
    )
    assert response.status_code == 202, response.content
    run_id = response.json()["id"]
    assert set(response.json()["estimate"]) == {"currency", "min", "max"}
    run = ResearchRun.objects.get(pk=run_id)
    assert run.started_by is not None and run.api_key_id is None
    detail = api.get(f"/api/research/runs/{run_id}/").json()
    assert detail["status"] == "queued" and detail["budget"]["amount"] == "50.0000000000"
    listed = api.get("/api/research/runs/").json()
    assert [r["id"] for r in listed["results"]] == [run_id]
    cancelled = api.post(f"/api/research/runs/{run_id}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


def test_bad_input_is_a_400_naming_the_field_and_a_tiny_budget_a_402(upstream, no_worker):
    t = make_tenant()
    research_routes(upstream.base_url)
    api = _api(t.org, "member")
    bad = api.post(
        "/api/research/runs/",
        {**run_body(depth="abyss"), "project": t.project.pk},
        format="json",
    )
    assert bad.status_code == 400 and "depth" in bad.json()
    tiny = api.post(
        "/api/research/runs/",
        {
            **run_body(budget={"currency": "CREDIT", "amount": "0.00001"}),
            "project": t.project.pk,
        },
        format="json",
    )
    assert tiny.status_code == 402 and tiny.json()["code"] == "run_budget_too_small"
    assert set(tiny.json()["estimate"]) == {"currency", "min", "max"}


def test_viewers_read_but_cannot_start_or_cancel(upstream, no_worker):
    t = make_tenant()
    research_routes(upstream.base_url)
    viewer = _api(t.org, "viewer")
    body = {**run_body(), "project": t.project.pk}
    assert viewer.post("/api/research/runs/", body, format="json").status_code == 403
    run_id = _api(t.org).post("/api/research/runs/", body, format="json").json()["id"]
    assert viewer.get(f"/api/research/runs/{run_id}/").status_code == 200
    assert viewer.post(f"/api/research/runs/{run_id}/cancel/").status_code == 403


def test_another_organizations_run_is_a_404(upstream, no_worker):
    t, other = make_tenant(), make_tenant()
    research_routes(upstream.base_url)
    run_id = (
        _api(t.org)
        .post("/api/research/runs/", {**run_body(), "project": t.project.pk}, format="json")
        .json()["id"]
    )
    intruder = _api(other.org)
    assert intruder.get(f"/api/research/runs/{run_id}/").status_code == 404
    assert intruder.post(f"/api/research/runs/{run_id}/cancel/").status_code == 404
    assert intruder.get("/api/research/runs/").json()["results"] == []
    foreign_project = intruder.post(
        "/api/research/runs/", {**run_body(), "project": t.project.pk}, format="json"
    )
    assert foreign_project.status_code == 400 and "project" in foreign_project.json()


def test_the_runs_are_in_the_openapi_schema():
    schema = APIClient().get("/api/schema/?format=json").json()
    assert "/api/research/runs/" in schema["paths"]
    assert "/api/research/runs/{id}/cancel/" in schema["paths"]
