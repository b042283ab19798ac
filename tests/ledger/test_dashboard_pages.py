"""Every dashboard page renders for every role that may see it and refuses the rest."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import Role
from tests.projects.dashboard_fixtures import *  # noqa: F403
from tests.projects.dashboard_fixtures import ROLES, usage_add

pytestmark = pytest.mark.django_db


def _yesterday():
    from datetime import timedelta

    from django.utils import timezone

    return timezone.now() - timedelta(days=1)


def _pages(tenant) -> list[str]:
    return [
        reverse("ledger:overview"),
        reverse("ledger:usage"),
        reverse("ledger:usage") + "?stack=wallet&kind=api",
        reverse("ledger:usage") + "?stack=key&currency=RMB",
        reverse("ledger:ledger"),
        reverse("ledger:ledger") + "?view=money",
        reverse("ledger:request_detail", args=[tenant.record.request_id]),
        reverse("ledger:transaction_detail", args=[tenant.record.transaction_id]),
        reverse("ledger:balance_drop"),
        reverse("projects:list"),
        reverse("projects:keys"),
        reverse("ledger:project_detail", args=[tenant.project.pk]),
        reverse("ledger:key_detail", args=[tenant.key.pk]),
    ]


@pytest.mark.parametrize("role", ROLES)
def test_every_page_renders_for_every_role(tenant, role):
    client = tenant.client(role)
    for url in _pages(tenant):
        response = client.get(url)
        assert response.status_code == 200, url


def test_anonymous_visitors_are_sent_to_log_in(tenant):
    from django.test import Client

    response = Client().get(reverse("ledger:overview"))
    assert response.status_code == 302
    assert "login" in response["Location"]


def test_overview_shows_both_wallets_and_the_forecast(tenant):
    usage_add(org=tenant.org, project=tenant.project, api_key=tenant.key, cost="1.75")
    usage_add(org=tenant.org, project=tenant.project, kind="researcher", cost="0.5")
    usage_add(org=tenant.org, project=tenant.project, cost="3", created_at=_yesterday())
    body = tenant.client().get(reverse("ledger:overview")).content.decode()
    assert "Credit (USD)" in body and "RMB (CNY)" in body
    assert "Researcher" in body and "API" in body
    assert "Lasts" in body and "at the pace of the last 7 full days" in body
    assert tenant.project.name in body


def test_viewers_may_look_but_not_create_keys_or_projects(tenant):
    client = tenant.client(Role.VIEWER)
    assert client.get(reverse("projects:key_create")).status_code == 403
    response = client.post(reverse("projects:list"), {"name": "x", "environment": "staging"})
    assert response.status_code == 403
    assert client.post(reverse("projects:key_revoke", args=[tenant.key.pk])).status_code == 403


def test_members_may_not_manage_budgets_or_archive_projects(tenant):
    client = tenant.client(Role.MEMBER)
    url = reverse("ledger:budget_save", args=["project", tenant.project.pk])
    assert (
        client.post(url, {"currency": "CREDIT", "amount": "5", "period": "day"}).status_code == 403
    )
    assert client.post(reverse("projects:archive", args=[tenant.project.pk])).status_code == 403
    assert client.post(reverse("projects:edit", args=[tenant.project.pk]), {}).status_code == 403


def test_usage_page_embeds_chart_data_and_the_vendored_library(tenant):
    body = tenant.client().get(reverse("ledger:usage")).content.decode()
    assert 'id="usage-series"' in body
    assert "vendor/chartjs/chart.umd.min.js" in body
    assert "gpt-test" in body


def test_request_story_shows_attempts_route_and_postings(tenant):
    url = reverse("ledger:request_detail", args=[tenant.record.request_id])
    body = tenant.client(Role.VIEWER).get(url).content.decode()
    for text in ("gpt-test", "openai-main", "upstream unavailable", "Fallback", "Usage revenue"):
        assert text in body
    assert f"Transaction #{tenant.record.transaction_id}" in body
