"""`python manage.py apply_routing FILE.yaml`: make the routing table match the file."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from routing.services import RoutingFileError, routing_apply_file


class Command(BaseCommand):
    help = "Apply a routing file (upstreams, models, routes, prices). Idempotent."

    def add_arguments(self, parser):
        parser.add_argument("file")

    def handle(self, *args, **options):
        try:
            changed = routing_apply_file(path=options["file"])
        except RoutingFileError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"created {changed['created']}, updated {changed['updated']}, disabled {changed['disabled']}"
        )
