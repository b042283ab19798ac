"""Fixtures and builders shared by the dashboard and management-API tests.

Import the fixtures into a test module with `from tests.projects.dashboard_fixtures import *`.
Usage records are written the way the proxy writes them: a balanced usage transaction
(wallet debited, usage revenue credited) with the record pointing at it.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime
from decimal import Decimal

import pytest
from django.test import Client

from accounts.models import Role
from ledger.models import AccountKind, UsageKind, UsageRecord, UsageStatus
from ledger.services.postings import system_account, transaction_post, wallet_for
from projects.services import key_create
from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory

__all__ = [
    "fund",
    "usage_add",
    "client_for",
    "tenant",
    "other_tenant",
    "ROLES",
]

ROLES = [Role.VIEWER, Role.MEMBER, Role.ADMIN, Role.OWNER]
_seq = itertools.count()


def fund(org, currency: str = "CREDIT", amount: str = "100", kind: str = "grant") -> None:
    source = AccountKind.GRANTS if kind == "grant" else AccountKind.ADJUSTMENTS
    transaction_post(
        org=org,
        kind=kind,
        legs=[
            (wallet_for(org=org, currency=currency), Decimal(amount)),
            (system_account(currency=currency, kind=source), -Decimal(amount)),
        ],
        reference=f"test-{kind}-{org.pk}-{currency}-{next(_seq)}",
    )


def usage_add(
    *,
    org,
    project=None,
    api_key=None,
    cost: str = "0.25",
    wallet: str = "CREDIT",
    model: str = "gpt-test",
    upstream: str = "openai-main",
    kind: str = UsageKind.API,
    status: str = UsageStatus.SETTLED,
    created_at: datetime | None = None,
    researcher_run_id=None,
    **fields,
) -> UsageRecord:
    """A finished request: settled ones carry a posted usage transaction, failed ones none.
    `fields`: any further usage-record columns (e.g. endpoint, dropped)."""
    txn = None
    if status == UsageStatus.SETTLED and Decimal(cost) > 0:
        txn, _ = transaction_post(
            org=org,
            kind="usage",
            legs=[
                (wallet_for(org=org, currency=wallet), -Decimal(cost)),
                (system_account(currency=wallet, kind=AccountKind.USAGE_REVENUE), Decimal(cost)),
            ],
            reference=f"test-usage-{uuid.uuid4().hex}",
        )
    record = UsageRecord.objects.create(
        request_id=f"req_{uuid.uuid4().hex[:20]}",
        **fields,
        org=org,
        project=project,
        api_key=api_key,
        kind=kind,
        researcher_run_id=researcher_run_id,
        model=model,
        upstream=upstream if status == UsageStatus.SETTLED else "",
        upstream_model=f"{model}-up",
        attempts=[
            {
                "upstream": "first-choice",
                "model": model,
                "status": 503,
                "error": "upstream unavailable",
                "latency_ms": 12,
            },
            {"upstream": upstream, "model": model, "status": 200, "error": "", "latency_ms": 80},
        ],
        fallback=True,
        wallet=wallet if status == UsageStatus.SETTLED else "",
        prompt_tokens=100,
        completion_tokens=50,
        price_input=Decimal("1.5"),
        price_output=Decimal("2"),
        cost=Decimal(cost) if status == UsageStatus.SETTLED else Decimal("0"),
        status=status,
        transaction=txn,
        # Usage records are append-only (a DB trigger refuses UPDATE): set the time at insert.
        **({"created_at": created_at} if created_at is not None else {}),
    )
    return record


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


class Tenant:
    """An organization with one member per role, a project, a key and some traffic."""

    def __init__(self):
        self.org = OrganizationFactory()
        self.users = {role: MembershipFactory(org=self.org, role=role).user for role in ROLES}
        self.project = ProjectFactory(org=self.org)
        self.key = key_create(project=self.project, name="main").api_key
        fund(self.org, "CREDIT", "100")
        fund(self.org, "RMB", "50")
        self.record = usage_add(org=self.org, project=self.project, api_key=self.key)

    def client(self, role: str = Role.OWNER) -> Client:
        return client_for(self.users[role])


@pytest.fixture
def tenant(db) -> Tenant:
    return Tenant()


@pytest.fixture
def other_tenant(db) -> Tenant:
    return Tenant()
