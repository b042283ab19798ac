"""`python manage.py export_routing`: the routing table as a routing file (no secrets)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from routing.services import routing_export_yaml


class Command(BaseCommand):
    help = "Print the routing table as YAML (secrets are named by api_key_env, never printed)."

    def handle(self, *args, **options):
        self.stdout.write(routing_export_yaml(), ending="")
