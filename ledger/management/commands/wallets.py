"""`python manage.py wallets --org SLUG`: the organization's wallets as JSON (last line)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from ledger.selectors import wallet_balances


class Command(BaseCommand):
    help = "Print an organization's wallets (currency, posted, held, available) as JSON."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organization slug")

    def handle(self, *args, **options):
        org = Organization.objects.filter(slug=options["org"]).first()
        if org is None:
            raise CommandError(f"Unknown organization {options['org']!r}.")
        rows = [
            {key: format(value, "f") if key != "currency" else value for key, value in w.items()}
            for w in wallet_balances(org_id=org.pk)
        ]
        self.stdout.write(json.dumps(rows))
