"""Tenant isolation, proven by walking the URL resolver rather than by listing URLs by hand.

Every dashboard, account and management-API URL that takes an object id is requested by an
owner of organization A with the ids of organization B's objects, with every method: the
answer is always 404 (or 405 for a method the URL does not take), never a page, a redirect
or a change. A URL pattern with an id that this file does not know fails the coverage test,
so a new tenant-scoped URL cannot ship without being swept.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken, Invitation, Membership
from accounts.tokens import api_token_create
from ledger.models import Budget, TopUp
from ledger.services.budgets import budget_set
from researcher.models import ResearchRun
from tests.projects.dashboard_fixtures import *  # noqa: F403
from tests.projects.dashboard_fixtures import client_for

pytestmark = pytest.mark.django_db

SWEPT_PREFIXES = ("dashboard/", "api/", "accounts/")
# URLs with a path argument that is not another tenant's object id.
EXEMPT = {
    "accounts:password_reset_confirm": "a signed one-time token, not an object id",
    "accounts:invite_accept": "the invitation token itself is the secret (tests/accounts)",
    "api-not-found": "the JSON 404 for any unknown path under /api/",
}
# URL name -> how to build its arguments from the *other* organization's objects.
OBJECT_ARGS = {
    "accounts:member_role": lambda b: [{"membership_id": b.membership.pk}],
    "accounts:member_remove": lambda b: [{"membership_id": b.membership.pk}],
    "accounts:invitation_revoke": lambda b: [{"invitation_id": b.invitation.pk}],
    "ledger:request_detail": lambda b: [{"request_id": b.record.request_id}],
    "ledger:transaction_detail": lambda b: [{"pk": b.record.transaction_id}],
    "ledger:project_detail": lambda b: [{"pk": b.project.pk}],
    "ledger:key_detail": lambda b: [{"pk": b.key.pk}],
    "ledger:budget_save": lambda b: [
        {"scope": "project", "pk": b.project.pk},
        {"scope": "key", "pk": b.key.pk},
    ],
    "ledger:budget_remove": lambda b: [{"budget_id": b.budget.pk}],
    "ledger:topup_test_pay": lambda b: [{"pk": b.topup.pk}],
    "ledger:topup_receipt": lambda b: [{"pk": b.topup.pk}],
    "projects:key_created": lambda b: [{"pk": b.key.pk}],
    "projects:edit": lambda b: [{"pk": b.project.pk}],
    "projects:archive": lambda b: [{"pk": b.project.pk}],
    "projects:key_edit": lambda b: [{"pk": b.key.pk}],
    "projects:key_revoke": lambda b: [{"pk": b.key.pk}],
    "api-projects-detail": lambda b: [{"pk": b.project.pk}],
    "api-projects-archive": lambda b: [{"pk": b.project.pk}],
    "api-projects-unarchive": lambda b: [{"pk": b.project.pk}],
    "api-keys-detail": lambda b: [{"pk": b.key.pk}],
    "api-keys-revoke": lambda b: [{"pk": b.key.pk}],
    "api-budgets-detail": lambda b: [{"pk": b.budget.pk}],
    "api-usage-records-detail": lambda b: [{"request_id": b.record.request_id}],
    "api-transactions-detail": lambda b: [{"pk": b.record.transaction_id}],
    "researcher:run": lambda b: [{"run_id": b.run.pk}],
    "researcher:run_status": lambda b: [{"run_id": b.run.pk}],
    "researcher:run_markdown": lambda b: [{"run_id": b.run.pk}],
    "researcher:run_cancel": lambda b: [{"run_id": b.run.pk}],
    "api-research-runs-detail": lambda b: [{"pk": b.run.pk}],
    "api-research-runs-cancel": lambda b: [{"pk": b.run.pk}],
    "accounts:api_token_revoke": lambda b: [{"token_id": b.api_token.pk}],
    "api-tokens-revoke": lambda b: [{"pk": b.api_token.pk}],
    "api-project-forecast": lambda b: [{"pk": b.project.pk}],
    "api-key-forecast": lambda b: [{"pk": b.key.pk}],
}
FORM = {
    "name": "stolen",
    "environment": "staging",
    "currency": "CREDIT",
    "amount": "1",
    "period": "day",
    "role": "owner",
}


def _walk(patterns, prefix: str = "", namespace: str = ""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = namespace
            if entry.namespace:
                ns = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), ns)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace else (entry.name or "")
            yield prefix + str(entry.pattern), name, entry


def _has_arguments(pattern: URLPattern) -> bool:
    converters = getattr(pattern.pattern, "converters", {}) or {}
    return bool(converters) or bool(pattern.pattern.regex.groupindex)


def tenant_scoped_urls() -> list[tuple[str, str]]:
    """(route, name) of every swept URL that takes a path argument."""
    found = []
    for route, name, pattern in _walk(get_resolver().url_patterns):
        route = route.replace("^", "").replace("$", "")
        if route.startswith(SWEPT_PREFIXES) and _has_arguments(pattern):
            found.append((route, name))
    return found


def test_every_url_with_an_object_id_is_covered_by_the_sweep():
    missing = [
        (route, name)
        for route, name in tenant_scoped_urls()
        if name not in OBJECT_ARGS and name not in EXEMPT
    ]
    assert missing == [], (
        "New URLs take an id but are not in the tenant-isolation sweep "
        f"(add them to OBJECT_ARGS in {__file__}): {missing}"
    )
    stale = set(OBJECT_ARGS) - {name for _, name in tenant_scoped_urls()}
    assert stale == set(), f"OBJECT_ARGS names URLs that no longer exist: {stale}"


@pytest.fixture
def victim(other_tenant):
    b = other_tenant
    b.membership = Membership.objects.get(org=b.org, user=b.users["member"])
    b.invitation = Invitation.objects.create(
        org=b.org,
        email="invitee@example.com",
        token_hash="f" * 64,
        expires_at=timezone.now() + timedelta(days=1),
    )
    b.budget = budget_set(
        org=b.org, currency="CREDIT", amount="5", period="month", project=b.project
    )
    b.topup = TopUp.objects.create(org=b.org, currency="CREDIT", amount="10", provider="test")
    b.run = ResearchRun.objects.create(
        org=b.org,
        project=b.project,
        question="q",
        tickers=["X"],
        model="m",
        budget_currency="CREDIT",
        budget_amount="1",
    )
    b.api_token = api_token_create(user=b.users["owner"]).token
    return b


def _state(b) -> dict:
    b.key.refresh_from_db()
    b.project.refresh_from_db()
    return {
        "key": (b.key.name, b.key.revoked_at, b.key.rpm_limit),
        "project": (b.project.name, b.project.archived_at),
        "member": Membership.objects.get(pk=b.membership.pk).role,
        "invitation": Invitation.objects.filter(pk=b.invitation.pk).exists(),
        "budgets": sorted(Budget.objects.filter(org=b.org).values_list("pk", "amount")),
        "topup": TopUp.objects.get(pk=b.topup.pk).status,
        "run": ResearchRun.objects.get(pk=b.run.pk).status,
        "api_token": ApiToken.objects.get(pk=b.api_token.pk).revoked_at,
    }


def test_another_organizations_objects_are_not_found_on_every_url_and_method(tenant, victim):
    owner_client = client_for(tenant.users["owner"])
    api = APIClient()
    api.force_authenticate(tenant.users["owner"])
    before = _state(victim)
    swept = 0
    for _route, name in tenant_scoped_urls():
        if name in EXEMPT:
            continue
        for kwargs in OBJECT_ARGS[name](victim):
            url = reverse(name, kwargs=kwargs)
            is_api = url.startswith("/api/")
            client = api if is_api else owner_client
            statuses = {}
            for method in ("get", "post", "put", "patch", "delete"):
                if is_api:
                    response = getattr(client, method)(url, FORM, format="json")
                elif method in ("get", "delete"):
                    response = getattr(client, method)(url)
                else:
                    response = getattr(client, method)(url, FORM)
                statuses[method] = response.status_code
            assert set(statuses.values()) <= {404, 405}, (url, statuses)
            assert 404 in statuses.values(), (url, statuses)
            swept += 1
    assert swept >= len(OBJECT_ARGS)
    assert _state(victim) == before  # nothing of theirs changed


OWN_READABLE = [
    "ledger:request_detail",
    "ledger:transaction_detail",
    "ledger:project_detail",
    "ledger:key_detail",
    "projects:key_edit",
    "api-projects-detail",
    "api-keys-detail",
    "api-usage-records-detail",
    "api-transactions-detail",
]


def test_the_same_urls_with_the_callers_own_ids_are_found(tenant):
    """The control: the 404s above come from the tenant check, not from a broken URL."""
    tenant.membership = Membership.objects.get(org=tenant.org, user=tenant.users["member"])
    owner_client = client_for(tenant.users["owner"])
    api = APIClient()
    api.force_authenticate(tenant.users["owner"])
    for name in OWN_READABLE:
        for kwargs in OBJECT_ARGS[name](tenant):
            url = reverse(name, kwargs=kwargs)
            client = api if url.startswith("/api/") else owner_client
            assert client.get(url).status_code == 200, url
