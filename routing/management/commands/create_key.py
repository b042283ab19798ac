"""`python manage.py create_key --org SLUG --project NAME ...`: prints the key on the last line."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import Organization
from ledger.errors import LedgerError
from ledger.models import Period
from ledger.money import Currency
from ledger.services.budgets import budget_set
from projects.services import key_create, project_get_or_create


def _positive_int(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or int(value) < 1:
        raise CommandError(f"--{name} must be a positive integer, got {value!r}")
    return int(value)


def _budgets(specs: list[str]) -> list[tuple[str, Decimal, str]]:
    budgets, seen = [], set()
    for spec in specs:
        parts = spec.split(":")
        if len(parts) != 3:
            raise CommandError(
                f"--budget {spec!r}: expected CURRENCY:AMOUNT:PERIOD, e.g. CREDIT:10:month"
            )
        currency, amount_text, period = parts[0].upper(), parts[1], parts[2].lower()
        if currency not in Currency.values:
            raise CommandError(f"--budget {spec!r}: currency must be CREDIT or RMB")
        if period not in Period.values:
            raise CommandError(f"--budget {spec!r}: period must be day, week, month or total")
        try:
            amount = Decimal(amount_text)
        except InvalidOperation as exc:
            raise CommandError(
                f"--budget {spec!r}: {amount_text!r} is not a decimal amount"
            ) from exc
        if not amount.is_finite() or amount < 0:
            raise CommandError(f"--budget {spec!r}: the amount must be zero or more")
        if currency in seen:
            raise CommandError(f"--budget: {currency} given twice (one budget per currency)")
        seen.add(currency)
        budgets.append((currency, amount, period))
    return budgets


class Command(BaseCommand):
    help = "Create an API key for a project (created if needed); prints the key on the last line."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--project", required=True, help="project name")
        parser.add_argument("--name", default="", help="key name")
        parser.add_argument(
            "--budget", action="append", default=[], help="CURRENCY:AMOUNT:PERIOD (repeatable)"
        )
        parser.add_argument("--models", default="", help="comma-separated allowed models")
        parser.add_argument(
            "--wallets", default="", help="comma-separated wallets in preference order"
        )
        parser.add_argument("--rpm", default=None)
        parser.add_argument("--tpm", default=None)

    def handle(self, *args, **options):
        org = Organization.objects.filter(slug=options["org"]).first()
        if org is None:
            raise CommandError(f"no organization with slug {options['org']!r}")
        project_name = options["project"].strip()
        if not project_name:
            raise CommandError("--project must not be empty")
        models = [m.strip() for m in options["models"].split(",") if m.strip()]
        wallets = [w.strip().upper() for w in options["wallets"].split(",") if w.strip()]
        for wallet in wallets:
            if wallet not in Currency.values:
                raise CommandError(f"--wallets: {wallet!r} is not CREDIT or RMB")
        if len(set(wallets)) != len(wallets):
            raise CommandError("--wallets: a wallet is named twice")
        rpm = _positive_int(options["rpm"], "rpm")
        tpm = _positive_int(options["tpm"], "tpm")
        budgets = _budgets(options["budget"])
        try:
            with transaction.atomic():
                project = project_get_or_create(org=org, name=project_name)
                created = key_create(
                    project=project,
                    name=options["name"],
                    allowed_models=models,
                    allowed_wallets=wallets,
                    rpm_limit=rpm,
                    tpm_limit=tpm,
                )
                for currency, amount, period in budgets:
                    budget_set(
                        org=org,
                        currency=currency,
                        amount=amount,
                        period=period,
                        api_key=created.api_key,
                    )
        except (LedgerError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"project {project.name} (id {project.pk}), key {created.api_key.prefix}…"
        )
        self.stdout.write(created.secret)
