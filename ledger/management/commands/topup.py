"""`python manage.py topup --org SLUG --currency CREDIT|RMB --amount 12.50 --reference REF`."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from ledger.errors import LedgerError
from ledger.services.topups import grant_exists, topup_grant


class Command(BaseCommand):
    help = "Operator grant to an organization's wallet; idempotent by --reference."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--currency", required=True, help="CREDIT or RMB")
        parser.add_argument("--amount", required=True, help="a positive decimal, e.g. 12.50")
        parser.add_argument("--reference", required=True, help="idempotency key")
        parser.add_argument("--reason", default="", help="why (kept on the transaction)")

    def handle(self, *args, **options):
        org = Organization.objects.filter(slug=options["org"]).first()
        if org is None:
            raise CommandError(f"Unknown organization {options['org']!r}.")
        already = grant_exists(reference=options["reference"])
        try:
            txn = topup_grant(
                org=org,
                currency=options["currency"],
                amount=options["amount"],
                reference=options["reference"],
                reason=options["reason"],
            )
        except (LedgerError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        if already:
            self.stdout.write(
                f"Reference {options['reference']!r} was already credited "
                f"(transaction #{txn.pk}); nothing moved."
            )
        else:
            self.stdout.write(f"Credited {org.slug}: transaction #{txn.pk}.")
