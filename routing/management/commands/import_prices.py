"""`python manage.py import_prices FILE [--apply] [--force]`: route prices from a LiteLLM-format
price catalog (routing/data holds a snapshot). Prints the diff; writes only with --apply."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from routing.catalog import catalog_load, prices_diff
from routing.services import prices_import


class Command(BaseCommand):
    help = (
        "Propose route prices, context windows and output limits from a LiteLLM-format price "
        "catalog (model_prices_and_context_window.json). Prints the diff; --apply writes it "
        "(audited); hand-set prices are kept unless --force."
    )

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--apply", action="store_true", help="write the proposed changes")
        parser.add_argument(
            "--force", action="store_true", help="also overwrite prices set by hand"
        )

    def handle(self, *args, **options):
        try:
            catalog = catalog_load(options["file"])
        except OSError as exc:
            raise CommandError(f"cannot read {options['file']}: {exc.strerror}") from exc
        except ValueError as exc:
            raise CommandError(f"{options['file']} is not a price catalog: {exc}") from exc
        changes = prices_diff(catalog=catalog, force=options["force"])
        for change in changes:
            self.stdout.write(change.line())
        writes = sum(1 for c in changes if c.writes)
        kept = sum(1 for c in changes if c.action == "kept")
        if not options["apply"]:
            self.stdout.write(
                f"{writes} change(s) proposed, {kept} hand-set value(s) kept; "
                "nothing written (run again with --apply)"
            )
            return
        written = prices_import(changes=changes)
        self.stdout.write(f"{written} change(s) written, {kept} hand-set value(s) kept")
