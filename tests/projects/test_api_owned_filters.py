"""List filters naming an object (`?project=`, `?api_key=`) answer another organization's id
exactly like an id that does not exist: 404, so the API reveals nothing about other tenants."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.projects.dashboard_fixtures import *  # noqa: F403

pytestmark = pytest.mark.django_db

CASES = [
    ("/api/keys/", "project"),
    ("/api/budgets/", "project"),
    ("/api/budgets/", "api_key"),
    ("/api/usage/records/", "project"),
    ("/api/usage/records/", "api_key"),
]


def _api(tenant) -> APIClient:
    api = APIClient()
    api.force_authenticate(tenant.users["owner"])
    return api


def _foreign_id(other_tenant, param: str) -> int:
    return other_tenant.project.pk if param == "project" else other_tenant.key.pk


@pytest.mark.parametrize(("path", "param"), CASES)
def test_another_orgs_id_and_a_missing_id_look_the_same(tenant, other_tenant, path, param):
    api = _api(tenant)
    foreign = api.get(path, {param: _foreign_id(other_tenant, param)})
    missing = api.get(path, {param: 999_999_999})
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()


@pytest.mark.parametrize(("path", "param"), CASES)
def test_own_ids_still_filter(tenant, path, param):
    own = tenant.project.pk if param == "project" else tenant.key.pk
    response = _api(tenant).get(path, {param: own})
    assert response.status_code == 200


@pytest.mark.parametrize("value", ["abc", "-1", "99999999999999999999999"])
def test_ids_that_are_not_ids_never_500(tenant, value):
    response = _api(tenant).get("/api/keys/", {"project": value})
    assert response.status_code in (400, 404)
