from __future__ import annotations

from django.conf import settings
from django.db import models

from accounts.models import Organization
from accounts.tenancy import TenantManager


class Environment(models.TextChoices):
    PRODUCTION = "production", "Production"
    STAGING = "staging", "Staging"
    DEVELOPMENT = "development", "Development"


class Project(models.Model):
    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="projects")
    name = models.CharField(max_length=120)
    environment = models.CharField(
        max_length=16, choices=Environment.choices, default=Environment.PRODUCTION
    )
    created_at = models.DateTimeField(auto_now_add=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    objects = TenantManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "name"], name="project_name_unique_per_org")
        ]

    def __str__(self) -> str:
        return self.name


class ApiKey(models.Model):
    """A per-project secret. Only a SHA-256 hash and a short visible prefix are stored."""

    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="api_keys")
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="api_keys")
    name = models.CharField(max_length=120, blank=True)
    prefix = models.CharField(
        max_length=16, db_index=True
    )  # "tf-" + first characters, shown in lists
    key_hash = models.CharField(max_length=64, unique=True)  # hex SHA-256 of the full key
    # Public model names this key may call; empty = every model.
    allowed_models = models.JSONField(default=list, blank=True)
    # Wallet currencies this key may spend, in the order routes should prefer; empty = all, route order.
    allowed_wallets = models.JSONField(default=list, blank=True)
    # CIDR strings; empty = any address.
    ip_allowlist = models.JSONField(default=list, blank=True)
    rpm_limit = models.PositiveIntegerField(null=True, blank=True)
    tpm_limit = models.PositiveIntegerField(null=True, blank=True)
    max_concurrent_streams = models.PositiveIntegerField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        verbose_name = "API key"
        verbose_name_plural = "API keys"

    def __str__(self) -> str:
        return f"{self.name or 'key'} ({self.prefix}…)"
