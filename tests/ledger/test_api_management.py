"""The management REST API: scoped to the caller's organization, role-checked, paginated,
filterable, with session and token authentication and a valid OpenAPI schema."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiToken
from projects.models import ApiKey
from projects.services import key_hash
from tests.projects.dashboard_fixtures import *  # noqa: F403
from tests.projects.dashboard_fixtures import usage_add

pytestmark = pytest.mark.django_db


def _api(tenant, role="owner") -> APIClient:
    api = APIClient()
    api.force_authenticate(tenant.users[role])
    return api


def test_anonymous_callers_are_refused(tenant):
    assert APIClient().get("/api/projects/").status_code in (401, 403)


def test_token_authentication_works_and_a_token_can_be_obtained(tenant):
    user = tenant.users["admin"]
    response = APIClient().post(
        "/api/auth/token/",
        {"username": user.email, "password": "correct horse battery staple"},
    )
    assert response.status_code == 200
    token = response.json()["token"]
    assert token.startswith("tfm_")
    assert not ApiToken.objects.filter(token_hash=token).exists()  # stored hashed only
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    body = api.get("/api/wallets/").json()
    assert {w["currency"] for w in body} == {"CREDIT", "RMB"}
    credit = next(w for w in body if w["currency"] == "CREDIT")
    assert Decimal(credit["available"]) == Decimal("99.75")


def test_session_authentication_works(tenant):
    response = tenant.client("viewer").get("/api/projects/")
    assert response.status_code == 200
    assert response.json()["results"][0]["name"] == tenant.project.name


def test_key_create_returns_the_secret_once(tenant):
    api = _api(tenant, "member")
    response = api.post(
        "/api/keys/",
        {
            "project": tenant.project.pk,
            "name": "ci",
            "allowed_models": ["gpt-test"],
            "allowed_wallets": ["RMB", "CREDIT"],
            "rpm_limit": 60,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["secret"].startswith("tf-") and len(body["secret"]) >= 43
    key = ApiKey.objects.get(pk=body["id"])
    assert key.key_hash == key_hash(body["secret"])
    assert key.allowed_wallets == ["RMB", "CREDIT"]
    again = api.get(f"/api/keys/{key.pk}/").json()
    assert "secret" not in again
    assert api.post(f"/api/keys/{key.pk}/revoke/").json()["revoked_at"] is not None


def test_key_settings_are_validated(tenant):
    api = _api(tenant)
    bad = api.post(
        "/api/keys/",
        {"project": tenant.project.pk, "allowed_wallets": ["EUR"], "ip_allowlist": ["nope"]},
        format="json",
    )
    assert bad.status_code == 400
    assert "allowed_wallets" in bad.json() and "ip_allowlist" in bad.json()


def test_roles_are_enforced(tenant):
    viewer = _api(tenant, "viewer")
    assert (
        viewer.post("/api/keys/", {"project": tenant.project.pk}, format="json").status_code == 403
    )
    assert viewer.post("/api/projects/", {"name": "p"}, format="json").status_code == 403
    member = _api(tenant, "member")
    budget = {"project": tenant.project.pk, "currency": "CREDIT", "amount": "5", "period": "day"}
    assert member.post("/api/budgets/", budget, format="json").status_code == 403
    assert member.post(f"/api/projects/{tenant.project.pk}/archive/").status_code == 403
    admin = _api(tenant, "admin")
    created = admin.post("/api/budgets/", budget, format="json")
    assert created.status_code == 201
    status = admin.get(f"/api/budgets/status/?project={tenant.project.pk}").json()
    assert status[0]["limit"].startswith("5.") and status[0]["period"] == "day"
    assert admin.delete(f"/api/budgets/{created.json()['id']}/").status_code == 204
    assert admin.get("/api/budgets/").json()["results"] == []


def test_projects_create_rename_and_archive(tenant):
    api = _api(tenant, "admin")
    created = api.post("/api/projects/", {"name": "new", "environment": "staging"}, format="json")
    assert created.status_code == 201
    pk = created.json()["id"]
    assert api.post("/api/projects/", {"name": "new"}, format="json").status_code == 400
    renamed = api.patch(f"/api/projects/{pk}/", {"name": "renamed"}, format="json").json()
    assert renamed["name"] == "renamed"
    assert api.post(f"/api/projects/{pk}/archive/").json()["archived_at"] is not None
    names = [p["name"] for p in api.get("/api/projects/").json()["results"]]
    assert "renamed" not in names


def test_usage_records_are_cursor_paginated_and_filterable(tenant):
    for _ in range(5):
        usage_add(org=tenant.org, project=tenant.project, model="paged")
    api = _api(tenant, "viewer")
    first = api.get("/api/usage/records/?model=paged&page_size=2").json()
    assert len(first["results"]) == 2 and first["next"]
    second = api.get(first["next"]).json()
    assert not {r["request_id"] for r in first["results"]} & {
        r["request_id"] for r in second["results"]
    }
    one = api.get(f"/api/usage/records/{tenant.record.request_id}/").json()
    assert one["upstream"] == "openai-main" and one["attempts"][0]["status"] == 503


def test_usage_aggregates_keep_api_and_researcher_apart(tenant):
    usage_add(org=tenant.org, project=tenant.project, kind="researcher", cost="2")
    rows = _api(tenant).get("/api/usage/?group_by=wallet").json()
    kinds = {(r["kind"], r["wallet"]): Decimal(r["cost"]) for r in rows}
    assert kinds[("api", "CREDIT")] == Decimal("0.25")
    assert kinds[("researcher", "CREDIT")] == Decimal("2")
    assert _api(tenant).get("/api/usage/?group_by=nope").status_code == 400
    assert _api(tenant).get("/api/usage/?start=bad").status_code == 400


def test_transactions_come_with_their_postings(tenant):
    body = _api(tenant).get("/api/transactions/?kind=usage").json()
    txn = body["results"][0]
    assert txn["request_id"] == tenant.record.request_id
    assert sum(Decimal(p["amount"]) for p in txn["postings"]) == 0


def test_schema_and_docs_answer(tenant):
    client = tenant.client()
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200


def test_api_docs_use_no_cdn(tenant):
    body = tenant.client().get("/api/docs/").content.decode()
    assert "cdn.jsdelivr" not in body and "unpkg" not in body
    assert "/static/drf_spectacular_sidecar/" in body
