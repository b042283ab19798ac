"""Projects and API keys in the dashboard: create, rename, archive, keys shown once, edits,
revocation and budgets with progress bars."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from ledger.models import Budget
from projects import services
from projects.models import ApiKey, Project
from projects.services import key_hash
from tests.projects.dashboard_fixtures import *  # noqa: F403

pytestmark = pytest.mark.django_db(transaction=False)


def test_a_member_creates_a_project_with_an_environment(tenant):
    client = tenant.client("member")
    response = client.post(reverse("projects:list"), {"name": "search", "environment": "staging"})
    project = Project.objects.get(org=tenant.org, name="search")
    assert response.status_code == 302
    assert project.environment == "staging"
    again = client.post(reverse("projects:list"), {"name": "search", "environment": "staging"})
    assert "already exists" in again.content.decode()


def test_an_admin_renames_and_archives_a_project_which_revokes_its_keys(tenant):
    client = tenant.client("admin")
    client.post(
        reverse("projects:edit", args=[tenant.project.pk]),
        {"name": "renamed", "environment": "development"},
    )
    tenant.project.refresh_from_db()
    assert (tenant.project.name, tenant.project.environment) == ("renamed", "development")
    client.post(reverse("projects:archive", args=[tenant.project.pk]))
    tenant.project.refresh_from_db()
    tenant.key.refresh_from_db()
    assert tenant.project.archived_at is not None
    assert tenant.key.revoked_at is not None
    assert AuditEvent.objects.filter(org=tenant.org, action="project.archive").exists()


def test_a_new_key_is_shown_exactly_once(tenant):
    client = tenant.client("member")
    response = client.post(
        reverse("projects:key_create"),
        {
            "project": tenant.project.pk,
            "name": "ci",
            "allowed_models": "",
            "allowed_wallets": "RMB,CREDIT",
            "rpm_limit": "60",
            "tpm_limit": "10000",
            "expires_at": "2030-01-01T00:00",
        },
    )
    assert response.status_code == 302  # post/redirect/get
    shown = client.get(response["Location"])
    assert shown["Cache-Control"] == "no-store"
    secret = shown.context["secret"]
    body = shown.content.decode()
    assert secret in body and "Copy key" in body and "shown only once" in body
    key = ApiKey.objects.get(key_hash=key_hash(secret))
    assert key.allowed_wallets == ["RMB", "CREDIT"]
    assert (key.rpm_limit, key.tpm_limit) == (60, 10000)
    reloaded = client.get(response["Location"])
    assert secret not in reloaded.content.decode()
    assert "shown once, when it was created" in reloaded.content.decode()
    assert ApiKey.objects.filter(project=tenant.project, name="ci").count() == 1
    for url in (reverse("projects:keys"), reverse("ledger:key_detail", args=[key.pk])):
        assert secret not in client.get(url).content.decode()


def test_key_settings_can_be_edited_and_the_proxy_cache_is_told(
    tenant, django_capture_on_commit_callbacks
):
    told = []
    services.KEY_REVOKED_HOOKS.append(told.append)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            tenant.client("member").post(
                reverse("projects:key_edit", args=[tenant.key.pk]),
                {"name": "renamed", "allowed_wallets": "CREDIT", "ip_allowlist": "10.0.0.0/8"},
            )
    finally:
        services.KEY_REVOKED_HOOKS.remove(told.append)
    tenant.key.refresh_from_db()
    assert tenant.key.name == "renamed"
    assert tenant.key.allowed_wallets == ["CREDIT"]
    assert tenant.key.ip_allowlist == ["10.0.0.0/8"]
    assert told == [tenant.key.key_hash]


def test_a_bad_ip_range_is_refused_with_a_message(tenant):
    response = tenant.client("member").post(
        reverse("projects:key_edit", args=[tenant.key.pk]), {"ip_allowlist": "not-an-ip"}
    )
    assert response.status_code == 200
    assert "is not an IP address or range" in response.content.decode()


def test_revoking_a_key_fires_the_hooks_at_once(tenant, django_capture_on_commit_callbacks):
    told = []
    services.KEY_REVOKED_HOOKS.append(told.append)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            tenant.client("member").post(reverse("projects:key_revoke", args=[tenant.key.pk]))
    finally:
        services.KEY_REVOKED_HOOKS.remove(told.append)
    tenant.key.refresh_from_db()
    assert tenant.key.revoked_at is not None
    assert told == [tenant.key.key_hash]


def test_an_admin_sets_a_key_budget_and_sees_its_progress(tenant):
    client = tenant.client("admin")
    response = client.post(
        reverse("ledger:budget_save", args=["key", tenant.key.pk]),
        {"currency": "CREDIT", "amount": "10", "period": "month", "soft_threshold": "0.5"},
    )
    assert response.status_code == 302
    budget = Budget.objects.get(api_key=tenant.key)
    assert (budget.amount, budget.period) == (Decimal("10"), "month")
    body = client.get(reverse("ledger:key_detail", args=[tenant.key.pk])).content.decode()
    assert 'role="progressbar"' in body and "Remove budget" in body
    client.post(reverse("ledger:budget_remove", args=[budget.pk]))
    body = client.get(reverse("ledger:key_detail", args=[tenant.key.pk])).content.decode()
    assert "No budgets." in body


def test_a_bad_budget_amount_is_refused_with_a_message(tenant):
    client = tenant.client("owner")
    url = reverse("ledger:budget_save", args=["project", tenant.project.pk])
    response = client.post(
        url, {"currency": "CREDIT", "amount": "-1", "period": "day"}, follow=True
    )
    assert "Budget not saved" in response.content.decode()
    assert not Budget.objects.filter(project=tenant.project).exists()
