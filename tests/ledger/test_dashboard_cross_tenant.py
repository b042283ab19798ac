"""Every dashboard and API URL that takes an object id answers 404 for another org's object."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from ledger.services.budgets import budget_set
from tests.projects.dashboard_fixtures import *  # noqa: F403

pytestmark = pytest.mark.django_db


def test_dashboard_urls_with_another_orgs_ids_are_not_found(tenant, other_tenant):
    theirs = other_tenant
    budget = budget_set(
        org=theirs.org, currency="CREDIT", amount="5", period="month", project=theirs.project
    )
    client = tenant.client()  # owner of the first organization
    gets = [
        reverse("ledger:project_detail", args=[theirs.project.pk]),
        reverse("ledger:key_detail", args=[theirs.key.pk]),
        reverse("projects:key_edit", args=[theirs.key.pk]),
        reverse("ledger:request_detail", args=[theirs.record.request_id]),
        reverse("ledger:transaction_detail", args=[theirs.record.transaction_id]),
    ]
    for url in gets:
        assert client.get(url).status_code == 404, url
    posts = [
        reverse("projects:edit", args=[theirs.project.pk]),
        reverse("projects:archive", args=[theirs.project.pk]),
        reverse("projects:key_revoke", args=[theirs.key.pk]),
        reverse("ledger:budget_save", args=["project", theirs.project.pk]),
        reverse("ledger:budget_save", args=["key", theirs.key.pk]),
        reverse("ledger:budget_remove", args=[budget.pk]),
    ]
    for url in posts:
        data = {
            "name": "x",
            "environment": "staging",
            "currency": "CREDIT",
            "amount": "1",
            "period": "day",
        }
        assert client.post(url, data).status_code == 404, url
    theirs.key.refresh_from_db()
    theirs.project.refresh_from_db()
    assert theirs.key.revoked_at is None and theirs.project.archived_at is None


def test_other_orgs_rows_never_appear_in_lists(tenant, other_tenant):
    client = tenant.client()
    for url in (reverse("ledger:ledger"), reverse("projects:keys"), reverse("projects:list")):
        body = client.get(url).content.decode()
        assert other_tenant.record.request_id[:12] not in body
        assert other_tenant.key.prefix not in body
        assert other_tenant.project.name not in body
    csv_body = b"".join(client.get(reverse("ledger:ledger_csv")).streaming_content).decode()
    assert other_tenant.record.request_id not in csv_body
    assert tenant.record.request_id in csv_body


def test_api_urls_with_another_orgs_ids_are_not_found(tenant, other_tenant):
    theirs = other_tenant
    budget = budget_set(
        org=theirs.org, currency="CREDIT", amount="5", period="month", api_key=theirs.key
    )
    api = APIClient()
    api.force_authenticate(tenant.users["owner"])
    for url in (
        f"/api/projects/{theirs.project.pk}/",
        f"/api/keys/{theirs.key.pk}/",
        f"/api/budgets/{budget.pk}/",
        f"/api/usage/records/{theirs.record.request_id}/",
        f"/api/transactions/{theirs.record.transaction_id}/",
        f"/api/budgets/status/?project={theirs.project.pk}",
        f"/api/usage/?project={theirs.project.pk}",
    ):
        assert api.get(url).status_code == 404, url
    assert api.post(f"/api/keys/{theirs.key.pk}/revoke/").status_code == 404
    assert api.post(f"/api/projects/{theirs.project.pk}/archive/").status_code == 404
    assert api.patch(f"/api/projects/{theirs.project.pk}/", {"name": "x"}).status_code == 404
    assert api.delete(f"/api/budgets/{budget.pk}/").status_code == 404
    response = api.post(
        "/api/budgets/",
        {"project": theirs.project.pk, "currency": "CREDIT", "amount": "1", "period": "day"},
    )
    assert response.status_code == 404
    response = api.post("/api/keys/", {"project": theirs.project.pk, "name": "x"}, format="json")
    assert response.status_code == 400
