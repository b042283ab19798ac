"""`python manage.py expire_holds`: the Celery beat sweep, on demand."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from ledger.services.holds import holds_expire


class Command(BaseCommand):
    help = "Void every expired pending hold and print how many were voided."

    def handle(self, *args, **options):
        voided = holds_expire()
        self.stdout.write(f"Voided {voided} expired hold(s).")
