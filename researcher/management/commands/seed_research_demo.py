"""`python manage.py seed_research_demo`: one finished AI Researcher run in the demo org."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from projects.services import project_get_or_create
from researcher.demo import demo_run_seed


class Command(BaseCommand):
    help = "Seed one finished AI Researcher run in the demo organization (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--org", default="demo", help="organization slug (default demo)")

    def handle(self, *args, **options):
        org = Organization.objects.filter(slug=options["org"]).first()
        if org is None:
            raise CommandError(f"no organization {options['org']!r}: run seed_demo first")
        project = project_get_or_create(org=org, name="demo")
        run = demo_run_seed(org=org, project=project)
        self.stdout.write(
            f"researcher demo run {run.pk}: {run.status}, spent {run.spent.normalize():f} "
            f"{run.budget_currency} (/dashboard/researcher/{run.pk}/)"
        )
