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
# callables(api_key=, currency=, amount=, period=, actor=) registered by the ledger: a budget
# set on the key form while creating the key.
KEY_BUDGET_SETTERS: list = []


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


# --- Dashboard edits (projects and keys) -------------------------------------------------

KEY_EDITABLE_FIELDS = (
    "name",
    "allowed_models",
    "allowed_wallets",
    "ip_allowlist",
    "rpm_limit",
    "tpm_limit",
    "max_concurrent_streams",
    "expires_at",
)


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


@transaction.atomic
def project_create(
    *,
    org: Organization,
    name: str,
    environment: str = Environment.PRODUCTION,
    actor: Any | None = None,
) -> Project:
    """Create a project; a duplicate name in the organization raises ValueError."""
    name = name.strip()
    if not name:
        raise ValueError("A project needs a name.")
    Environment(environment)  # ValueError on an unknown label
    if Project.objects.for_org(org).filter(name=name).exists():
        raise ValueError(f"A project called {name!r} already exists.")
    project = Project.objects.create(org=org, name=name, environment=environment)
    audit_record(
        org=org,
        actor=actor,
        action="project.create",
        target=project,
        changes={"name": name, "environment": environment},
    )
    return project


@transaction.atomic
def project_update(
    *,
    project: Project,
    name: str | None = None,
    environment: str | None = None,
    actor: Any | None = None,
) -> Project:
    """Rename a project or change its environment label; names stay unique per organization."""
    changes: dict[str, Any] = {}
    if name is not None and name.strip() and name.strip() != project.name:
        name = name.strip()
        clash = Project.objects.for_org(project.org_id).filter(name=name).exclude(pk=project.pk)
        if clash.exists():
            raise ValueError(f"A project called {name!r} already exists.")
        changes["name"] = [project.name, name]
        project.name = name
    if environment is not None and environment != project.environment:
        Environment(environment)
        changes["environment"] = [project.environment, environment]
        project.environment = environment
    if changes:
        project.save(update_fields=[f for f in ("name", "environment") if f in changes])
        audit_record(
            org=project.org, actor=actor, action="project.update", target=project, changes=changes
        )
    return project


@transaction.atomic
def project_archive(*, project: Project, actor: Any | None = None) -> Project:
    """Archive a project and revoke its keys: an archived project takes no more traffic."""
    if project.archived_at is None:
        project.archived_at = timezone.now()
        project.save(update_fields=["archived_at"])
        audit_record(
            org=project.org, actor=actor, action="project.archive", target=project, changes={}
        )
        for api_key in ApiKey.objects.filter(project=project, revoked_at__isnull=True):
            key_revoke(api_key=api_key, actor=actor)
    return project


@transaction.atomic
def project_unarchive(*, project: Project, actor: Any | None = None) -> Project:
    """Bring an archived project back; its revoked keys stay revoked."""
    if project.archived_at is not None:
        project.archived_at = None
        project.save(update_fields=["archived_at"])
        audit_record(
            org=project.org, actor=actor, action="project.unarchive", target=project, changes={}
        )
    return project


@transaction.atomic
def key_update(*, api_key: ApiKey, actor: Any | None = None, **values: Any) -> ApiKey:
    """Change a key's settings (name, models, wallets and their order, limits, expiry).

    Only `KEY_EDITABLE_FIELDS` may change; the secret never does (revoke and create instead).
    The proxy's key cache is told through `KEY_REVOKED_HOOKS`, so new limits apply at once.
    """
    unknown = set(values) - set(KEY_EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    changes = {}
    for name, value in values.items():
        if getattr(api_key, name) != value:
            changes[name] = [_jsonable(getattr(api_key, name)), _jsonable(value)]
            setattr(api_key, name, value)
    if changes:
        api_key.save(update_fields=list(changes))
        audit_record(
            org=api_key.org, actor=actor, action="key.update", target=api_key, changes=changes
        )
        hashes = [api_key.key_hash]
        transaction.on_commit(lambda: [hook(h) for hook in KEY_REVOKED_HOOKS for h in hashes])
    return api_key
