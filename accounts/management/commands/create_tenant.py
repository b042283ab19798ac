"""`create_tenant --org NAME --email EMAIL --password PASSWORD`: a user, their organization
and its wallets, for operators and scripts. Prints the organization's slug on the last line.

Idempotent: an existing user is reused as is (password untouched) and so is the organization
called NAME that they already own; the setup hooks run again, and they create nothing twice.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction

from accounts.models import User
from accounts.selectors import organization_owned_by
from accounts.services import organization_create, organization_setup, user_create


class Command(BaseCommand):
    help = "Create (or reuse) a user and an organization they own; prints the slug last."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organization name")
        parser.add_argument("--email", required=True)
        parser.add_argument("--password", required=True, help="used only for a new user")

    def handle(self, *args, org: str, email: str, password: str, **options):
        email = email.strip().lower()
        name = org.strip()
        if not name:
            raise CommandError("--org must not be empty.")
        try:
            validate_email(email)
        except Exception as error:
            raise CommandError(f"--email is not a valid email address: {email!r}") from error
        with transaction.atomic():
            user = User.objects.filter(email__iexact=email).first()
            if user is None:
                user = user_create(email=email, password=password)
                self.stdout.write(f"created user {email}")
            organization = organization_owned_by(user=user, name=name)
            if organization is None:
                organization = organization_create(name=name, owner=user)
                self.stdout.write(f"created organization {name}")
            else:
                organization_setup(org=organization)
        self.stdout.write(organization.slug)
