"""Operators' admin edits of upstreams, routes and keys land in the audit log, secrets masked."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.models import AuditEvent
from ledger.services import topups
from projects.services import key_create
from routing.models import Upstream


@pytest.fixture
def operator(db, django_user_model):
    return django_user_model.objects.create_superuser(email="op@example.com", password="pw-123456")


def test_an_upstream_edited_in_admin_is_audited_without_its_secret(client, operator):
    upstream = Upstream.objects.create(
        name="relay-a", provider="openai-compatible", base_url="http://127.0.0.1:9/v1", wallet="RMB"
    )
    client.force_login(operator)
    response = client.post(
        f"/admin/routing/upstream/{upstream.pk}/change/",
        {
            "name": "relay-a",
            "provider": "openai-compatible",
            "base_url": "http://127.0.0.1:9/v1",
            "wallet": "RMB",
            "timeout": "30",
            "enabled": "on",
            "new_api_key": "sk-very-secret-value",
        },
    )
    assert response.status_code == 302, response.content[:500]
    event = AuditEvent.objects.get(action="routing.upstream.change")
    assert event.actor_id == operator.pk
    assert event.changes["timeout"] == "30"
    assert event.changes["new_api_key"] == "changed"
    assert "sk-very-secret-value" not in str(event.changes)


def test_a_key_edited_in_admin_is_audited_for_its_org(client, operator, project):
    api_key = key_create(project=project, name="ci").api_key
    client.force_login(operator)
    page = client.get(f"/admin/projects/apikey/{api_key.pk}/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data["rpm_limit"] = "77"
    response = client.post(f"/admin/projects/apikey/{api_key.pk}/change/", data)
    assert response.status_code == 302, response.content[:800]
    event = AuditEvent.objects.get(action="projects.apikey.change")
    assert event.org_id == project.org_id
    assert event.changes["rpm_limit"] == "77"


@pytest.mark.django_db
def test_a_paid_top_up_is_audited_once(settings, owner, org):
    settings.DEBUG = True
    topup = topups.testpay_start(org=org, amount="10", actor=owner)
    topups.testpay_complete(org=org, topup_id=topup.pk)
    topups.testpay_complete(org=org, topup_id=topup.pk)
    events = AuditEvent.objects.filter(org=org, action="topup.paid")
    assert events.count() == 1
    assert Decimal(events.get().changes["amount"]) == Decimal("10")
