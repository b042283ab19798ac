"""The Researcher pages: start a run from the form (live estimate, form errors), the runs
list, the run page with steps, figures, chart data and the sanitised report, the Markdown
download, cancel; another organization's run is a 404 on every page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from researcher import services
from researcher.execution import run_execute
from researcher.models import ResearchRun
from tests.researcher.conftest import make_tenant, member_client, price_csv, research_routes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def no_worker(monkeypatch):
    monkeypatch.setattr(services, "run_enqueue", lambda run_id: None)


def _form(t, **overrides) -> dict:
    data = {
        "project": str(t.project.pk),
        "question": "Is NVDA's momentum holding?",
        "tickers": "NVDA",
        "depth": "quick",
        "model": "researcher-model",
        "budget_currency": "CREDIT",
        "budget_amount": "50",
        "prices": price_csv(),
    }
    data.update(overrides)
    return data


def test_a_member_starts_a_run_and_sees_it_finished_with_report_and_chart(upstream, no_worker):
    t = make_tenant()
    research_routes(upstream.base_url)
    client = member_client(t.org, "member")
    page = client.get(reverse("researcher:runs"))
    assert page.status_code == 200 and b"Start a run" in page.content
    estimate = client.post(reverse("researcher:estimate"), _form(t)).json()
    assert estimate["ok"] and estimate["estimate"]["currency"] == "CREDIT"
    response = client.post(reverse("researcher:runs"), _form(t))
    run = ResearchRun.objects.get()
    assert response.status_code == 302 and response.url == reverse("researcher:run", args=[run.pk])
    assert run.started_by is not None
    run_execute(run_id=run.pk)
    page = client.get(reverse("researcher:run", args=[run.pk])).content.decode()
    assert 'id="run-report"' in page and 'id="run-chart"' in page and "RSI (14)" in page
    assert "plan" in page and "analyse" in page and "report" in page
    status = client.get(reverse("researcher:run_status", args=[run.pk])).json()
    assert status["status"] == "succeeded" and not status["active"]
    download = client.get(reverse("researcher:run_markdown", args=[run.pk]))
    assert download["Content-Type"].startswith("text/markdown")
    assert download.content.decode() == ResearchRun.objects.get().report
    listing = client.get(reverse("researcher:runs")).content.decode()
    assert str(run.pk) in listing and "Succeeded" in listing


def test_a_budget_too_small_is_a_form_error_with_the_estimate(upstream, no_worker):
    t = make_tenant()
    research_routes(upstream.base_url)
    client = member_client(t.org, "member")
    response = client.post(reverse("researcher:runs"), _form(t, budget_amount="0.00001"))
    assert response.status_code == 200
    errors = response.context["form"].errors["budget_amount"][0]
    assert "cannot fund even the first step" in errors and "estimated at" in errors
    assert not ResearchRun.objects.exists()
    bad = client.post(reverse("researcher:runs"), _form(t, prices="date,open\n1,2"))
    assert "line 1" in bad.context["form"].errors["prices"][0]


def test_the_report_is_sanitised(upstream, no_worker):
    t = make_tenant()
    research_routes(upstream.base_url)
    run, _ = services.run_create(
        org_id=t.org.pk,
        project_id=t.project.pk,
        data={
            "question": "q",
            "tickers": ["X"],
            "model": "researcher-model",
            "budget": {"currency": "CREDIT", "amount": "50"},
        },
    )
    ResearchRun.objects.filter(pk=run.pk).update(
        status="succeeded",
        report="# Title\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) **bold**",
    )
    page = member_client(t.org).get(reverse("researcher:run", args=[run.pk])).content.decode()
    report = page.split('id="run-report"')[1].split("</article>")[0]
    assert "<script>" not in report and "&lt;script&gt;" in report
    assert 'href="javascript' not in report
    assert "<strong>bold</strong>" in report and "<h1>Title</h1>" in report


def test_viewers_cannot_start_or_cancel_and_other_orgs_get_404(upstream, no_worker):
    t, other = make_tenant(), make_tenant()
    research_routes(upstream.base_url)
    run, _ = services.run_create(
        org_id=t.org.pk,
        project_id=t.project.pk,
        data={
            "question": "q",
            "tickers": ["X"],
            "model": "researcher-model",
            "budget": {"currency": "CREDIT", "amount": "50"},
        },
    )
    viewer = member_client(t.org, "viewer")
    viewer.post(reverse("researcher:runs"), _form(t))
    assert ResearchRun.objects.count() == 1
    assert viewer.post(reverse("researcher:run_cancel", args=[run.pk])).status_code == 403
    intruder = member_client(other.org)
    for name in ("researcher:run", "researcher:run_status", "researcher:run_markdown"):
        assert intruder.get(reverse(name, args=[run.pk])).status_code == 404
    assert intruder.post(reverse("researcher:run_cancel", args=[run.pk])).status_code == 404
    assert str(run.pk) not in intruder.get(reverse("researcher:runs")).content.decode()
    member = member_client(t.org, "member")
    member.post(reverse("researcher:run_cancel", args=[run.pk]))
    assert ResearchRun.objects.get(pk=run.pk).status == "cancelled"
    actions = set(AuditEvent.objects.filter(org=t.org).values_list("action", flat=True))
    assert {"research_run.start", "research_run.cancel"} <= actions
