"""schemathesis against the management API's own OpenAPI schema (/api/schema/), with an
authenticated token: every operation, generated inputs, no 500 and no response that breaks
the schema (status codes, content types, bodies, headers)."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis import GenerationConfig

from accounts.tokens import api_token_create
from config.wsgi import application
from tests.projects.dashboard_fixtures import Tenant

pytestmark = pytest.mark.django_db(transaction=True)  # a failed query must not poison the next


@pytest.fixture
def api_schema(transactional_db):
    # As Django's test client does: a request must not close the test's DB connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        # Our token is the auth; no generated (random) session cookies or tokens besides it.
        yield schemathesis.from_wsgi(
            "/api/schema/",
            application,
            generation_config=GenerationConfig(with_security_parameters=False),
        )
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


schema = schemathesis.from_pytest_fixture("api_schema")


@pytest.fixture
def token(transactional_db) -> str:
    tenant = Tenant()  # an owner with a project, a key, money and a usage record
    return api_token_create(user=tenant.users["owner"]).secret


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_the_management_api_honours_its_schema(case, token):
    auth = {"Authorization": f"Token {token}"}
    # schemathesis 3.39 writes an invalid session cookie into these; they must be dicts.
    case.headers, case.cookies = case.headers or {}, case.cookies or {}
    response = case.call_wsgi(headers=auth)
    # The same headers for the checks: the ignored-auth check resends without them (401).
    case.validate_response(response, headers=auth)


@pytest.mark.parametrize("path", ["/api/usage/records/./", "/api/nothing-here/", "/api/keys/1/x/"])
def test_unknown_api_paths_answer_a_json_404(path, token):
    from django.test import Client

    response = Client().get(path, HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_a_nul_byte_in_an_api_url_is_a_400_not_a_500(token):
    from django.test import Client

    client = Client()
    for path in ("/api/usage/records/%00/", "/api/usage/records/?model=%00"):
        response = client.get(path, HTTP_AUTHORIZATION=f"Token {token}")
        assert response.status_code == 400, path
        assert "NUL" in response.json()["detail"]


@pytest.mark.parametrize("query", ["limit=9223372036854775808", "offset=9223372036854775808"])
def test_absurd_pagination_numbers_are_bounded_not_a_500(query, token):
    from django.test import Client

    response = Client().get(f"/api/projects/?{query}", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200
    assert len(response.json()["results"]) <= 1000
