"""`python manage.py seed_demo`: the embedded demo's operator, organization, routes and money.

Idempotent except for the secrets: each run prints a fresh operator password and a new key.
"""

from __future__ import annotations

import secrets
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Membership, Organization, Role, User
from ledger.models import AccountKind
from ledger.services.postings import system_account, transaction_post, wallet_for, wallets_open
from projects.services import key_create, project_get_or_create
from routing.services import routing_apply

OPERATOR_EMAIL = "operator@tokenforge.local"
DEMO_ROUTING = {
    "upstreams": [
        {"name": "demo-relay", "provider": "demo", "base_url": "", "wallet": "RMB", "timeout": 30},
        {"name": "demo", "provider": "demo", "base_url": "", "wallet": "CREDIT", "timeout": 30},
    ],
    "models": [
        {
            "name": "demo-gpt",
            "routes": [
                {
                    "upstream": "demo",
                    "model": "demo-gpt",
                    "price": {"input": "0.15", "output": "0.60"},
                }
            ],
        },
        {
            "name": "gpt-4o-mini",
            "routes": [
                {
                    "upstream": "demo-relay",
                    "model": "gpt-4o-mini",
                    "price": {"input": "1.05", "output": "4.20"},
                },
                {
                    "upstream": "demo",
                    "model": "gpt-4o-mini",
                    "price": {"input": "0.15", "output": "0.60", "cached_input": "0.075"},
                },
            ],
        },
        {
            "name": "text-embedding-3-small",
            "routes": [
                {
                    "upstream": "demo",
                    "model": "text-embedding-3-small",
                    "price": {"input": "0.02", "output": "0"},
                }
            ],
        },
    ],
}
TOPUPS = {"CREDIT": Decimal("100"), "RMB": Decimal("700")}


def _grant(org: Organization, currency: str, amount: Decimal) -> None:
    reference = f"demo-seed:{org.slug}:{currency}"
    try:
        from ledger.services.topups import topup_grant
    except ImportError:
        topup_grant = None
    if topup_grant is not None:
        topup_grant(
            org=org, currency=currency, amount=amount, reference=reference, reason="demo seed"
        )
        return
    transaction_post(
        org=org,
        kind="grant",
        legs=[
            (wallet_for(org=org, currency=currency), amount),
            (system_account(currency=currency, kind=AccountKind.GRANTS), -amount),
        ],
        reference=reference,
        reason="demo seed",
    )


class Command(BaseCommand):
    help = "Seed the embedded demo (operator, demo org, demo upstreams and routes, money, a key)."

    @transaction.atomic
    def handle(self, *args, **options):
        password = secrets.token_urlsafe(12)
        operator = User.objects.filter(email=OPERATOR_EMAIL).first()
        if operator is None:
            operator = User.objects.create_superuser(
                email=OPERATOR_EMAIL, password=password, name="Operator"
            )
        else:
            operator.set_password(password)
            operator.is_staff = operator.is_superuser = True
            operator.save()
        org, _ = Organization.objects.get_or_create(slug="demo", defaults={"name": "Demo"})
        wallets_open(org=org)
        Membership.objects.get_or_create(user=operator, org=org, defaults={"role": Role.OWNER})
        project = project_get_or_create(org=org, name="demo")
        routing_apply(data=DEMO_ROUTING, env={})
        for currency, amount in TOPUPS.items():
            _grant(org, currency, amount)
        created = key_create(project=project, name="demo key", actor=operator)
        self.stdout.write(f"operator: {OPERATOR_EMAIL}  password: {password}  (admin at /admin/)")
        self.stdout.write(
            "organization: demo (slug demo), project: demo; models: demo-gpt, gpt-4o-mini"
        )
        self.stdout.write("API key (shown once):")
        self.stdout.write(created.secret)
