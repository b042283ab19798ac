"""Projects and API keys: creation, revocation. Keys are shown once and stored as a hash."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Organization
from projects.models import ApiKey, Environment, Project

KEY_PREFIX = "tf-"
KEY_RANDOM_CHARS = 48  # "tf-" + 48 url-safe characters
VISIBLE_PREFIX_CHARS = 10  # "tf-" + 7, shown in lists and on usage records


def key_hash(raw_key: str) -> str:
    """SHA-256 is right here: keys are 48 random characters, not guessable passwords."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


def _key_generate() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return KEY_PREFIX + "".join(secrets.choice(alphabet) for _ in range(KEY_RANDOM_CHARS))


@dataclass(frozen=True)
class CreatedKey:
    api_key: ApiKey
    secret: str  # the only time the full key exists outside the client


def project_get_or_create(
    *,
    org: Organization,
    name: str,
    actor: Any | None = None,
    environment: str = Environment.PRODUCTION,
) -> Project:
    project, created = Project.objects.get_or_create(
        org=org, name=name, defaults={"environment": environment}
    )
    if created:
        audit_record(
            org=org, actor=actor, action="project.create", target=project, changes={"name": name}
        )
    return project


@transaction.atomic
def key_create(
    *,
    project: Project,
    name: str = "",
    allowed_models: list[str] | None = None,
    allowed_wallets: list[str] | None = None,
    ip_allowlist: list[str] | None = None,
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
    max_concurrent_streams: int | None = None,
    expires_at: datetime | None = None,
    actor: Any | None = None,
) -> CreatedKey:
    secret = _key_generate()
    api_key = ApiKey.objects.create(
        org_id=project.org_id,
        project=project,
        name=name,
        prefix=secret[:VISIBLE_PREFIX_CHARS],
        key_hash=key_hash(secret),
        allowed_models=list(allowed_models or []),
        allowed_wallets=list(allowed_wallets or []),
        ip_allowlist=list(ip_allowlist or []),
        rpm_limit=rpm_limit,
        tpm_limit=tpm_limit,
        max_concurrent_streams=max_concurrent_streams,
        expires_at=expires_at,
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    audit_record(
        org=project.org,
        actor=actor,
        action="key.create",
        target=api_key,
        changes={"name": name, "project": project.name, "prefix": api_key.prefix},
    )
    return CreatedKey(api_key=api_key, secret=secret)


KEY_REVOKED_HOOKS: list = []  # callables(key_hash) registered by higher apps (the proxy's key cache)


@transaction.atomic
def key_revoke(*, api_key: ApiKey, actor: Any | None = None) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit_record(
            org=api_key.org,
            actor=actor,
            action="key.revoke",
            target=api_key,
            changes={"prefix": api_key.prefix},
        )
        hashes = [api_key.key_hash]
        transaction.on_commit(lambda: [hook(h) for hook in KEY_REVOKED_HOOKS for h in hashes])
    return api_key
