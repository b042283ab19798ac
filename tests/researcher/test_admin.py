"""The runs admin: list with filters and spend vs budget, steps inline, a cancel action that
needs the change permission; the operator overview splits revenue and margin by kind."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from researcher.execution import run_execute
from researcher.models import ResearchRun
from researcher.services import run_create
from tests.factories import UserFactory
from tests.researcher.conftest import api_call, make_tenant, research_routes, run_body

pytestmark = pytest.mark.django_db(transaction=True)


def _staff(client, *, superuser: bool, perms=()):
    user = UserFactory(is_staff=True, is_superuser=superuser)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(user)
    return client


def test_operators_filter_runs_see_steps_and_cancel(client, upstream, monkeypatch):
    from researcher import services

    monkeypatch.setattr(services, "run_enqueue", lambda run_id: None)
    t = make_tenant()
    research_routes(upstream.base_url)
    done, _ = run_create(org_id=t.org.pk, project_id=t.project.pk, data=run_body())
    run_execute(run_id=done.pk)
    queued, _ = run_create(org_id=t.org.pk, project_id=t.project.pk, data=run_body())
    api_call(t)
    _staff(client, superuser=True)
    changelist = reverse("admin:researcher_researchrun_changelist")
    page = client.get(changelist + "?status__exact=succeeded").content.decode()
    assert str(done.pk) in page and str(queued.pk) not in page
    assert client.get(changelist + f"?org={t.org.slug}&model=researcher-model").status_code == 200
    detail = client.get(reverse("admin:researcher_researchrun_change", args=[done.pk]))
    assert detail.status_code == 200 and b"analyse" in detail.content
    client.post(changelist, {"action": "action_cancel", "_selected_action": [str(queued.pk)]})
    assert ResearchRun.objects.get(pk=queued.pk).status == "cancelled"
    overview = client.get(reverse("admin_overview")).content.decode()
    assert 'id="overview-kinds"' in overview and "Researcher" in overview


def test_the_cancel_action_needs_the_change_permission(client, upstream, monkeypatch):
    from researcher import services

    monkeypatch.setattr(services, "run_enqueue", lambda run_id: None)
    t = make_tenant()
    research_routes(upstream.base_url)
    run, _ = run_create(org_id=t.org.pk, project_id=t.project.pk, data=run_body())
    _staff(client, superuser=False, perms=["view_researchrun"])
    changelist = reverse("admin:researcher_researchrun_changelist")
    assert client.get(changelist).status_code == 200
    client.post(changelist, {"action": "action_cancel", "_selected_action": [str(run.pk)]})
    assert ResearchRun.objects.get(pk=run.pk).status == "queued"
