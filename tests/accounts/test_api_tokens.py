"""Management-API tokens: stored hashed and shown once, a new one per request, expiring,
last-used recorded, revocable on the dashboard, in admin and over the API, revoked by a
password change or reset, documented in the OpenAPI schema."""

from __future__ import annotations

import importlib
import re
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib.auth.tokens import default_token_generator
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from rest_framework.test import APIClient

from accounts.models import ApiToken, User
from accounts.tokens import api_token_create, api_token_hash
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"


@pytest.fixture
def member(db):
    return MembershipFactory().user


def _obtain(user, **extra) -> dict:
    response = APIClient().post(
        "/api/auth/token/", {"username": user.email, "password": PASSWORD, **extra}
    )
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    return response.json()


def _call(secret: str, path: str = "/api/projects/"):
    return APIClient().get(path, HTTP_AUTHORIZATION=f"Token {secret}")


def test_an_obtained_token_is_stored_only_as_its_hash_and_expires(member):
    body = _obtain(member, name="ci", expires_in_days=7)
    secret = body["token"]
    row = ApiToken.objects.get(pk=body["id"])
    assert row.token_hash == api_token_hash(secret)
    assert secret not in {row.token_hash, row.prefix, row.name}
    assert secret.startswith(row.prefix)
    assert timedelta(days=6, hours=23) < row.expires_at - timezone.now() <= timedelta(days=7)
    assert _call(secret).status_code == 200


def test_every_obtain_call_creates_a_new_token_and_never_returns_an_existing_one(member):
    first, second = _obtain(member)["token"], _obtain(member)["token"]
    assert first != second
    assert ApiToken.objects.filter(user=member).count() == 2
    assert _call(first).status_code == 200 and _call(second).status_code == 200


def test_wrong_password_gets_no_token(member):
    response = APIClient().post("/api/auth/token/", {"username": member.email, "password": "nope"})
    assert response.status_code == 400
    assert not ApiToken.objects.exists()


def test_the_list_never_shows_a_secret_and_records_last_use(member):
    secret = _obtain(member)["token"]
    assert ApiToken.objects.get().last_used_at is None
    listed = _call(secret, "/api/auth/tokens/")
    assert listed.status_code == 200
    assert secret not in listed.content.decode()
    assert ApiToken.objects.get().last_used_at is not None


def test_expired_and_revoked_tokens_are_refused(member):
    expired = api_token_create(user=member)
    ApiToken.objects.filter(pk=expired.token.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert _call(expired.secret).status_code == 401
    live = _obtain(member)
    response = APIClient().post(
        f"/api/auth/tokens/{live['id']}/revoke/", HTTP_AUTHORIZATION=f"Token {live['token']}"
    )
    assert response.status_code == 200
    assert response.json()["revoked_reason"] == "user"
    assert _call(live["token"]).status_code == 401


def test_another_users_token_cannot_be_revoked_over_the_api(member):
    mine = _obtain(member)["token"]
    other = api_token_create(user=MembershipFactory().user)
    response = APIClient().post(
        f"/api/auth/tokens/{other.token.pk}/revoke/", HTTP_AUTHORIZATION=f"Token {mine}"
    )
    assert response.status_code == 404
    assert _call(other.secret).status_code == 200


def test_a_password_change_on_the_dashboard_revokes_every_token(member):
    secrets = [_obtain(member)["token"] for _ in range(2)]
    client = Client()
    client.force_login(member)
    response = client.post(
        reverse("accounts:password_change"),
        {
            "old_password": PASSWORD,
            "new_password1": "a new long passphrase 77",
            "new_password2": "a new long passphrase 77",
        },
    )
    assert response.status_code == 302
    for secret in secrets:
        assert _call(secret).status_code == 401
    assert set(ApiToken.objects.values_list("revoked_reason", flat=True)) == {"password_change"}


def test_a_password_reset_revokes_every_token(member):
    secret = _obtain(member)["token"]
    uid = urlsafe_base64_encode(force_bytes(member.pk))
    token = default_token_generator.make_token(member)
    client = Client()
    url = reverse("accounts:password_reset_confirm", args=[uid, token])
    form_url = client.get(url)["Location"]  # Django swaps the token for a session marker
    response = client.post(
        form_url,
        {"new_password1": "a reset passphrase 88", "new_password2": "a reset passphrase 88"},
    )
    assert response.status_code == 302
    assert _call(secret).status_code == 401
    assert ApiToken.objects.get().revoked_reason == "password_reset"


def test_an_operator_setting_a_password_in_admin_revokes_the_users_tokens(member):
    secret = _obtain(member)["token"]
    operator = User.objects.create_superuser(email="root@example.com", password="pw-root-1234")
    client = Client()
    client.force_login(operator)
    response = client.post(
        reverse("admin:auth_user_password_change", args=[member.pk]),
        {
            "password1": "an operator passphrase 99",
            "password2": "an operator passphrase 99",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302
    assert _call(secret).status_code == 401


def test_the_dashboard_creates_a_token_shown_once_and_revokes_it(member):
    client = Client()
    client.force_login(member)
    page = client.get(reverse("accounts:api_tokens"))
    assert page.status_code == 200
    response = client.post(
        reverse("accounts:api_tokens"), {"name": "deploy", "expires_in_days": 30}
    )
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    secret = re.search(r'value="(tfm_[^"]+)"', response.content.decode()).group(1)
    assert _call(secret).status_code == 200
    listing = client.get(reverse("accounts:api_tokens")).content.decode()
    assert "deploy" in listing and secret not in listing
    token = ApiToken.objects.get()
    client.post(reverse("accounts:api_token_revoke", args=[token.pk]))
    assert _call(secret).status_code == 401
    assert "revoked" in client.get(reverse("accounts:api_tokens")).content.decode()


def test_the_dashboard_cannot_revoke_another_users_token(member):
    other = api_token_create(user=MembershipFactory().user)
    client = Client()
    client.force_login(member)
    response = client.post(reverse("accounts:api_token_revoke", args=[other.token.pk]))
    assert response.status_code == 404
    assert _call(other.secret).status_code == 200


def test_the_token_admin_lists_searches_and_revokes_without_error(member):
    created = api_token_create(user=member, name="ci")
    operator = User.objects.create_superuser(email="root@example.com", password="pw-root-1234")
    client = Client()
    client.force_login(operator)
    url = reverse("admin:accounts_apitoken_changelist")
    for query in ("ci", member.email, created.token.prefix, "nothing"):
        response = client.get(url, {"q": query})
        assert response.status_code == 200
    assert created.secret not in client.get(url).content.decode()
    client.post(url, {"action": "revoke_tokens", "_selected_action": [created.token.pk]})
    assert _call(created.secret).status_code == 401
    assert ApiToken.objects.get().revoked_reason == "operator"


def test_the_schema_documents_the_token_and_its_endpoints(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert schema["components"]["securitySchemes"]["tokenAuth"]["name"] == "Authorization"
    assert "/api/auth/token/" in schema["paths"]
    assert "/api/auth/tokens/{id}/revoke/" in schema["paths"]
    assert "token" in str(schema["components"]["schemas"]["ApiTokenCreated"])


def test_legacy_plain_text_authtoken_keys_are_imported_hashed_and_the_table_dropped(member):
    legacy = "0123456789abcdef0123456789abcdef01234567"
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, created timestamptz,"
            " user_id bigint)"
        )
        cursor.execute("INSERT INTO authtoken_token VALUES (%s, now(), %s)", [legacy, member.pk])
    migration = importlib.import_module("accounts.migrations.0002_api_tokens")
    with connection.schema_editor() as editor:
        migration.import_legacy_tokens(apps, editor)
    assert "authtoken_token" not in connection.introspection.table_names()
    assert ApiToken.objects.get().token_hash == api_token_hash(legacy)
    assert _call(legacy).status_code == 200


def test_repeated_failed_token_requests_lock_out_with_a_json_429(member, settings):
    settings.AXES_FAILURE_LIMIT = 2
    api = APIClient()
    for _ in range(2):
        api.post("/api/auth/token/", {"username": member.email, "password": "wrong"})
    response = api.post("/api/auth/token/", {"username": member.email, "password": PASSWORD})
    assert response.status_code == 429
    assert "detail" in response.json()
    assert not ApiToken.objects.exists()
