"""The dashboard's audit log: owners and admins see who changed what, when, in their own
organization only; platform events (no organization) stay in admin."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.audit import audit_record
from accounts.models import AuditEvent, Membership, Role
from accounts.services import membership_set_role
from ledger.services.budgets import budget_set
from ledger.services.redemptions import redemption_batch_create, redemption_redeem
from ledger.services.topups import topup_grant
from projects.services import key_create, key_revoke, key_update
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db
URL = reverse("accounts:audit_log")


def _page(client, **query) -> str:
    response = client.get(URL, query)
    assert response.status_code == 200
    return response.content.decode()


def test_owner_sees_key_budget_role_and_money_changes_with_who_and_what(
    client, owner, org, project, member_of
):
    created = key_create(project=project, name="backend", actor=owner)
    key_update(api_key=created.api_key, actor=owner, rpm_limit=60)
    budget_set(
        org=org,
        api_key=created.api_key,
        currency="CREDIT",
        amount="25",
        period="month",
        actor=owner,
    )
    key_revoke(api_key=created.api_key, actor=owner)
    viewer = member_of(Role.VIEWER)
    membership_set_role(
        actor=owner, membership=Membership.objects.for_org(org).get(user=viewer), role=Role.MEMBER
    )
    topup_grant(org=org, currency="RMB", amount=Decimal("50"), reference="audit-test", actor=owner)
    _, codes = redemption_batch_create(name="promo", currency="CREDIT", amount="5", count=1)
    redemption_redeem(org=org, code=codes[0], actor=owner)

    client.force_login(owner)
    body = _page(client)
    for action in (
        "key.create",
        "key.update",
        "budget.create",
        "key.revoke",
        "membership.role_change",
        "topup.grant",
        "redemption.redeem",
    ):
        assert f'data-action="{action}"' in body, action
    assert owner.email in body
    assert "rpm limit:</span> — → 60" in body
    assert f"{viewer.email}" in body and "viewer → member" in body


def test_filter_by_kind_shows_only_that_kind(client, owner, project):
    key_create(project=project, name="k", actor=owner)
    audit_record(org=project.org, actor=owner, action="budget.create", target=project)
    client.force_login(owner)
    body = _page(client, kind="keys")
    assert 'data-action="key.create"' in body
    assert 'data-action="budget.create"' not in body
    body = _page(client, kind="budgets")
    assert 'data-action="key.create"' not in body
    assert 'data-action="budget.create"' in body


def test_another_organizations_events_never_show(client, owner, other_org, other_owner):
    foreign_project = ProjectFactory(org=other_org, name="their-secret-project")
    key_create(project=foreign_project, name="their-key", actor=other_owner)
    client.force_login(owner)
    body = _page(client)
    assert "key.create" not in body
    assert other_owner.email not in body
    assert "their-key" not in body
    # Not even through the filter or paging.
    assert "their-key" not in _page(client, kind="keys", page="2")


def test_the_session_org_decides_for_a_member_of_both(client, owner, org, other_org):
    Membership.objects.create(user=owner, org=other_org, role=Role.OWNER)
    foreign_project = ProjectFactory(org=other_org)
    key_create(project=foreign_project, name="only-in-other", actor=owner)
    client.force_login(owner)
    client.post(reverse("accounts:switch"), {"org": org.pk})
    assert "only-in-other" not in _page(client)
    client.post(reverse("accounts:switch"), {"org": other_org.pk})
    assert "only-in-other" in _page(client)


@pytest.mark.parametrize("kind", ["", "routing", "money", "keys"])
def test_platform_events_without_an_organization_are_never_shown_to_customers(client, owner, kind):
    operator = UserFactory(email="ops@tokenforge.example", is_staff=True)
    audit_record(
        org=None,
        actor=operator,
        action="upstream.disable",
        target="relay",
        changes={"reason": "401 Incorrect API key provided: sk-live-abc"},
    )
    audit_record(org=None, actor=operator, action="routing.route.change", target="x")
    client.force_login(owner)
    body = _page(client, kind=kind) if kind else _page(client)
    assert "upstream.disable" not in body
    assert "routing.route.change" not in body
    assert "sk-live-abc" not in body
    assert "ops@tokenforge.example" not in body


def test_a_brand_new_signup_sees_no_platform_event(client):
    audit_record(org=None, actor=None, action="upstream.disable", target="relay")
    response = client.post(
        reverse("accounts:signup"),
        {
            "email": "fresh@example.com",
            "password": "a fresh long passphrase 42",
            "organization_name": "Fresh",
        },
    )
    assert response.status_code == 302
    body = _page(client, kind="routing")
    assert "upstream.disable" not in body
    assert "No changes recorded" in body


def test_operators_see_platform_events_in_admin(client):
    operator = UserFactory(email="root@tokenforge.example", is_staff=True, is_superuser=True)
    audit_record(org=None, actor=operator, action="upstream.disable", target="relay")
    client.force_login(operator)
    response = client.get(reverse("admin:accounts_auditevent_changelist"))
    assert response.status_code == 200
    assert "upstream.disable" in response.content.decode()


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_members_and_viewers_may_not_read_the_audit_log(client, member_of, role):
    client.force_login(member_of(role))
    assert client.get(URL).status_code == 403


def test_admins_may_read_it_and_see_the_link(client, admin_user):
    client.force_login(admin_user)
    response = client.get(URL)
    assert response.status_code == 200
    assert f'href="{URL}"' in response.content.decode()


def test_it_is_paginated_newest_first(client, owner, org):
    AuditEvent.objects.bulk_create(
        AuditEvent(
            org=org, actor=owner, action="key.update", target_type="apikey", target_id=str(n)
        )
        for n in range(60)
    )
    client.force_login(owner)
    first = _page(client)
    assert first.count('data-action="key.update"') == 50
    assert "Page 1 of 2" in first
    second = _page(client, page="2")
    assert second.count('data-action="key.update"') >= 10


def test_operator_money_adjustments_show_as_operator_not_by_name(client, owner, org):
    from ledger.services.adjustments import adjustment_post

    operator = UserFactory(email="finance@tokenforge.example", is_staff=True)
    adjustment_post(
        org=org, currency="CREDIT", amount="3", reason="goodwill credit", operator=operator
    )
    client.force_login(owner)
    body = _page(client, kind="money")
    assert 'data-action="ledger.adjustment"' in body
    assert "goodwill credit" in body
    assert "tokenforge operator" in body
    assert "finance@tokenforge.example" not in body


def test_amounts_read_as_money_not_storage_precision():
    from accounts.selectors import audit_change_lines

    lines = dict(audit_change_lines({"amount": "25.0000000000", "cost": "0.0002184000"}))
    assert lines == {"amount": "25.00", "cost": "0.0002184"}
    assert dict(audit_change_lines({"prefix": "tf-abc.def"}))["prefix"] == "tf-abc.def"
