"""Operators see projects and keys in admin and revoke keys through the service."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from tests.projects.dashboard_fixtures import *  # noqa: F403

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(db):
    user = User.objects.create_superuser(email="ops@example.com", password="pw-ops-123456")
    client = Client()
    client.force_login(user)
    return client


def test_project_and_key_lists_render_with_search(operator, tenant):
    for name in ("project", "apikey"):
        url = reverse(f"admin:projects_{name}_changelist")
        assert operator.get(url, {"q": tenant.project.name}).status_code == 200
    assert (
        operator.get(reverse("admin:projects_project_change", args=[tenant.project.pk])).status_code
        == 200
    )
    assert operator.get(reverse("admin:accounts_apitoken_changelist")).status_code == 200


def test_the_revoke_action_revokes_keys(operator, tenant):
    url = reverse("admin:projects_apikey_changelist")
    operator.post(url, {"action": "revoke_keys", "_selected_action": [tenant.key.pk]})
    tenant.key.refresh_from_db()
    assert tenant.key.revoked_at is not None
