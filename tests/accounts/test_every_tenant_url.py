"""Cross-tenant access is refused on EVERY URL that names an object, found by walking the URL
configuration: a new tenant-scoped URL fails this file until it is listed here and answers
404 for another organization's object, by GET and by every method that changes something."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from accounts.models import Membership, Role
from accounts.services import invitation_create
from ledger.models import TopUp, TopUpProvider, TopUpStatus
from ledger.services.budgets import budget_set
from tests.projects.dashboard_fixtures import *  # noqa: F403

pytestmark = pytest.mark.django_db

# URLs with arguments that are not tenant objects, and why.
NOT_TENANT_SCOPED = {
    "accounts:password_reset_confirm": "a signed one-time token, no organization",
    "accounts:invite_accept": "a one-time token; whoever holds the link may accept it",
    "routing:not-found": "the proxy's catch-all 404",
}

# name -> how to build the URL's arguments from the other tenant's objects.
TENANT_URLS = {
    "accounts:member_role": lambda o: [o["membership"].pk],
    "accounts:member_remove": lambda o: [o["membership"].pk],
    "accounts:invitation_revoke": lambda o: [o["invitation"].pk],
    "ledger:request_detail": lambda o: [o["t"].record.request_id],
    "ledger:transaction_detail": lambda o: [o["t"].record.transaction_id],
    "ledger:project_detail": lambda o: [o["t"].project.pk],
    "ledger:key_detail": lambda o: [o["t"].key.pk],
    "ledger:budget_save": lambda o: ["project", o["t"].project.pk],
    "ledger:budget_remove": lambda o: [o["budget"].pk],
    "ledger:topup_test_pay": lambda o: [o["topup"].pk],
    "projects:edit": lambda o: [o["t"].project.pk],
    "projects:archive": lambda o: [o["t"].project.pk],
    "projects:key_edit": lambda o: [o["t"].key.pk],
    "projects:key_revoke": lambda o: [o["t"].key.pk],
    "api-projects-detail": lambda o: [o["t"].project.pk],
    "api-projects-archive": lambda o: [o["t"].project.pk],
    "api-projects-unarchive": lambda o: [o["t"].project.pk],
    "api-keys-detail": lambda o: [o["t"].key.pk],
    "api-keys-revoke": lambda o: [o["t"].key.pk],
    "api-budgets-detail": lambda o: [o["budget"].pk],
    "api-usage-records-detail": lambda o: [o["t"].record.request_id],
    "api-transactions-detail": lambda o: [o["t"].record.transaction_id],
}
# Form data that would be valid for the owner's own objects, so a refusal is not a 400.
DATA = {
    "name": "taken over",
    "environment": "staging",
    "currency": "CREDIT",
    "amount": "1",
    "period": "day",
    "role": "owner",
}


def _urls_with_arguments(resolver=None, namespace=""):
    for pattern in (resolver or get_resolver()).url_patterns:
        if isinstance(pattern, URLResolver):
            if str(pattern.pattern).startswith("admin/"):
                continue  # Django admin: operators (staff), not tenants
            inner = namespace
            if pattern.namespace:
                inner = f"{namespace}{pattern.namespace}:"
            yield from _urls_with_arguments(pattern, inner)
        elif pattern.pattern.regex.groups and pattern.name:
            yield f"{namespace}{pattern.name}"


def test_every_url_with_an_argument_is_listed_here():
    found = set(_urls_with_arguments())
    assert found - set(NOT_TENANT_SCOPED) - set(TENANT_URLS) == set(), "add it to TENANT_URLS"
    assert set(TENANT_URLS) - found == set(), "a listed URL no longer exists"


@pytest.fixture
def theirs(other_tenant):
    org = other_tenant.org
    return {
        "t": other_tenant,
        "membership": Membership.objects.for_org(org).get(user=other_tenant.users[Role.VIEWER]),
        "invitation": invitation_create(
            org=org, invited_by=other_tenant.users[Role.OWNER], email="pending@example.com"
        ).invitation,
        "budget": budget_set(
            org=org, currency="CREDIT", amount="5", period="month", project=other_tenant.project
        ),
        "topup": TopUp.objects.create(
            org=org,
            currency="CREDIT",
            amount=Decimal("10"),
            provider=TopUpProvider.TEST,
            status=TopUpStatus.PENDING,
        ),
    }


@pytest.mark.parametrize("name", sorted(TENANT_URLS))
def test_another_organizations_object_is_not_found_by_any_method(name, tenant, theirs, settings):
    settings.DEBUG = True  # the test payment page exists only then
    url = reverse(name, args=TENANT_URLS[name](theirs))
    if name.startswith("api-"):
        client = APIClient()
        client.force_authenticate(tenant.users[Role.OWNER])
        methods = ("get", "post", "patch", "put", "delete")
        kwargs = {"format": "json"}
    else:
        client = tenant.client(Role.OWNER)
        methods = ("get", "post")
        kwargs = {}
    answers = {}
    for method in methods:
        data = DATA if method != "get" else None
        answers[method] = getattr(client, method)(url, data, **kwargs).status_code
    assert set(answers.values()) <= {404, 405}, answers
    assert 404 in answers.values(), answers
    # Nothing of theirs changed.
    other = theirs["t"]
    other.key.refresh_from_db()
    other.project.refresh_from_db()
    assert other.key.revoked_at is None and other.project.archived_at is None
    assert other.project.name != "taken over"
    assert Membership.objects.get(pk=theirs["membership"].pk).role == Role.VIEWER
    theirs["budget"].refresh_from_db()
    assert theirs["budget"].removed_at is None and theirs["budget"].amount == Decimal("5")
    theirs["topup"].refresh_from_db()
    assert theirs["topup"].status == TopUpStatus.PENDING
