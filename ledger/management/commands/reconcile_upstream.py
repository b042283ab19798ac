"""`python manage.py reconcile_upstream --upstream NAME --file BILL.csv`: compare an upstream's
exported usage bill with the usage records and print the mismatches (exit 1 when any)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError

from ledger.services.upstream_bill import BillError, upstream_bill_reconcile


class Command(BaseCommand):
    help = (
        "Compare an upstream's exported bill (CSV: request id or time, model, tokens, cost) "
        "with the usage records; prints every mismatch."
    )

    def add_arguments(self, parser):
        parser.add_argument("--upstream", required=True, help="the upstream's name")
        parser.add_argument("--file", required=True, help="the bill, as CSV with a header")
        parser.add_argument(
            "--tolerance",
            default="0.000001",
            help="largest cost difference per line still counted equal (bills round)",
        )
        parser.add_argument(
            "--window", type=int, default=300, help="seconds around a bill line's time to match"
        )

    def handle(self, *args, **options):
        try:
            tolerance = Decimal(options["tolerance"])
        except InvalidOperation as exc:
            raise CommandError("--tolerance must be a decimal number") from exc
        try:
            with open(options["file"], encoding="utf-8-sig", newline="") as bill:
                report = upstream_bill_reconcile(
                    upstream=options["upstream"],
                    bill=bill,
                    tolerance=tolerance,
                    window_seconds=options["window"],
                )
        except OSError as exc:
            raise CommandError(f"cannot read {options['file']}: {exc.strerror}") from exc
        except BillError as exc:
            raise CommandError(str(exc)) from exc
        for line in report.mismatches:
            self.stdout.write(line)
        self.stdout.write(
            f"{report.lines} bill line(s), {report.matched} matched, "
            f"{len(report.mismatches)} mismatch(es); billed {report.billed}, "
            f"computed {report.computed}"
        )
        if not report.ok:
            raise CommandError(f"{len(report.mismatches)} mismatch(es) with {options['upstream']}")
