from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from routing import crypto
from routing.models import Upstream
from routing.services import upstream_disable

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_superuser(
        email="op@example.com", password="pw-123456789"
    )


def test_the_upstream_admin_never_shows_the_secret_and_alerts_on_disabled_upstreams(
    client, operator
):
    upstream = Upstream(name="relay-a", provider="openai-compatible", base_url="http://x/v1")
    upstream.set_api_key("sk-very-secret")
    upstream.save()
    upstream_disable(upstream_id=upstream.pk, reason="401 invalid api key")
    client.force_login(operator)
    page = client.get("/admin/routing/upstream/").content.decode()
    assert "relay-a is disabled: 401 invalid api key" in page
    change = client.get(f"/admin/routing/upstream/{upstream.pk}/change/").content.decode()
    assert "sk-very-secret" not in change and upstream.api_key_encrypted not in change


def test_the_enable_action_re_enables_an_upstream(client, operator):
    upstream = Upstream.objects.create(
        name="u", provider="openai", base_url="http://x/v1", enabled=False, disabled_reason="quota"
    )
    client.force_login(operator)
    client.post(
        "/admin/routing/upstream/", {"action": "action_enable", "_selected_action": [upstream.pk]}
    )
    upstream.refresh_from_db()
    assert upstream.enabled and upstream.disabled_reason == ""


def test_secrets_round_trip_and_a_missing_key_outside_debug_is_refused():
    token = crypto.secret_encrypt("sk-abc")
    assert token != "sk-abc" and crypto.secret_decrypt(token) == "sk-abc"
    crypto._fernet.cache_clear()
    try:
        with (
            override_settings(FIELD_ENCRYPTION_KEY="", DEBUG=False),
            pytest.raises(ImproperlyConfigured),
        ):
            crypto.secret_encrypt("x")
        crypto._fernet.cache_clear()
        with override_settings(FIELD_ENCRYPTION_KEY="", DEBUG=True):
            assert crypto.secret_decrypt(crypto.secret_encrypt("dev")) == "dev"
    finally:
        crypto._fernet.cache_clear()
