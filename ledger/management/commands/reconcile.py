"""`python manage.py reconcile [--org SLUG]`: check every ledger invariant.

Prints each broken invariant, then a JSON summary on the last line; exits 1 when one fails.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from ledger.services.reconcile import reconcile


class Command(BaseCommand):
    help = "Check the ledger's invariants; exit 1 with the details when one fails."

    def add_arguments(self, parser):
        parser.add_argument("--org", help="limit the checks to one organization (slug)")

    def handle(self, *args, **options):
        org = None
        if options["org"]:
            org = Organization.objects.filter(slug=options["org"]).first()
            if org is None:
                raise CommandError(f"Unknown organization {options['org']!r}.")
        report = reconcile(org=org)
        for problem in report.problems:
            self.stdout.write(f"FAIL {problem}")
        for warning in report.warnings:
            self.stdout.write(f"WARN {warning}")
        scope = f"organization {report.org}" if report.org else "the whole ledger"
        if report.ok:
            self.stdout.write(f"Reconciled {scope}: every invariant holds.")
        else:
            failed = ", ".join(report.summary()["failed_checks"])
            self.stdout.write(f"Reconciliation of {scope} FAILED: {failed}.")
        self.stdout.write(json.dumps(report.summary(), sort_keys=True))
        if not report.ok:
            raise CommandError(f"Reconciliation failed: {failed}.", returncode=1)
