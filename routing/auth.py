"""API-key authentication for /v1/: `Authorization: Bearer KEY` or `x-api-key: KEY`.

A hot key costs no query: resolved keys are cached in-process for a short TTL. Revocation
still takes effect at once: `key_revoke` calls our hook (clears this process's entry and
bumps a revocation version in Redis); every request compares that version (one GET) and
drops its cache when it moved. Without Redis the TTL bounds staleness in other processes.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from projects.services import key_hash as hash_key
from routing import cooldown
from routing.db import db_call
from routing.errors import GatewayError
from routing.redis import async_redis, redis_errors, redis_failed, sync_redis

log = logging.getLogger("routing.auth")

REVOCATION_VERSION_KEY = "tf:keys:revocation-version"
NEGATIVE_TTL_SECONDS = 5
MAX_CACHE_ENTRIES = 50_000


@dataclass(frozen=True, slots=True)
class KeyContext:
    """Everything a request needs about its caller, resolved once. The researcher builds
    one with `key_context_for(...)` (api_key_id may be None there)."""

    org_id: int
    project_id: int | None
    api_key_id: int | None
    price_multiplier: Decimal
    prefix: str = ""
    name: str = ""
    project_name: str = ""
    allowed_models: tuple[str, ...] = ()
    allowed_wallets: tuple[str, ...] = ()
    ip_networks: tuple = ()
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_concurrent_streams: int | None = None
    expires_at: datetime | None = None
    revoked: bool = False
    key_hash: str = field(default="", repr=False)

    def model_allowed(self, model: str) -> bool:
        return not self.allowed_models or model in self.allowed_models


_cache: dict[str, tuple[float, KeyContext | None]] = {}
_seen_version: list = [None]


def _context_from_key(api_key) -> KeyContext:
    networks = []
    for cidr in api_key.ip_allowlist or []:
        try:
            networks.append(ipaddress.ip_network(str(cidr), strict=False))
        except ValueError:
            log.warning("key %s has an invalid CIDR in its allow-list; ignored", api_key.prefix)
    return KeyContext(
        org_id=api_key.org_id,
        project_id=api_key.project_id,
        api_key_id=api_key.pk,
        price_multiplier=api_key.org.price_multiplier,
        prefix=api_key.prefix,
        name=api_key.name,
        project_name=api_key.project.name,
        allowed_models=tuple(api_key.allowed_models or ()),
        allowed_wallets=tuple(api_key.allowed_wallets or ()),
        ip_networks=tuple(networks),
        rpm_limit=api_key.rpm_limit,
        tpm_limit=api_key.tpm_limit,
        max_concurrent_streams=api_key.max_concurrent_streams,
        expires_at=api_key.expires_at,
        revoked=api_key.revoked_at is not None,
        key_hash=api_key.key_hash,
    )


def key_context_load(*, key_hash: str) -> KeyContext | None:
    from projects.models import ApiKey

    api_key = ApiKey.objects.select_related("org", "project").filter(key_hash=key_hash).first()
    return None if api_key is None else _context_from_key(api_key)


def key_context_for(
    *, org_id: int, project_id: int | None = None, api_key_id: int | None = None
) -> KeyContext:
    """A context for in-process callers (the AI Researcher): the key's settings when given,
    else the organization's multiplier with no key restrictions."""
    from accounts.models import Organization
    from projects.models import ApiKey, Project

    if api_key_id is not None:
        api_key = ApiKey.objects.select_related("org", "project").get(pk=api_key_id, org_id=org_id)
        return _context_from_key(api_key)
    org = Organization.objects.get(pk=org_id)
    project_name = ""
    if project_id is not None:
        project_name = Project.objects.for_org(org).get(pk=project_id).name
    return KeyContext(
        org_id=org.pk,
        project_id=project_id,
        api_key_id=None,
        price_multiplier=org.price_multiplier,
        project_name=project_name,
    )


def key_cache_invalidate(key_hash: str | None = None) -> None:
    if key_hash is None:
        _cache.clear()
    else:
        _cache.pop(key_hash, None)


def on_key_revoked(key_hash: str) -> None:
    """Registered in `projects.services.KEY_REVOKED_HOOKS` (runs after the revoke commits)."""
    key_cache_invalidate(key_hash)
    client = sync_redis()
    if client is not None:
        try:
            client.incr(REVOCATION_VERSION_KEY)
        except redis_errors as exc:
            redis_failed(exc, "key revocation")


def _route_ids_of(model) -> list[int]:
    """The routes of `model` when its entry is cached (no query), else none."""
    if not isinstance(model, str):
        return []
    from routing.selectors import model_entry_cached

    hit, entry = model_entry_cached(name=model)
    return [r.route_id for r in entry.routes] if hit and entry is not None else []


async def _check_revocation_version(model=None) -> None:
    """One round trip: the revocation version and, when the model's routes are known, their
    cooldown flags for the engine's plan (routing.cooldown.prefetch_store)."""
    client = async_redis()
    if client is None:
        return
    route_ids = _route_ids_of(model)
    try:
        if route_ids:
            values = await client.mget([REVOCATION_VERSION_KEY, *cooldown.prefetch_keys(route_ids)])
            version = values[0]
            cooldown.prefetch_store(route_ids, values[1:])
        else:
            version = await client.get(REVOCATION_VERSION_KEY)
    except redis_errors as exc:
        redis_failed(exc, "key revocation")
        return
    if version != _seen_version[0]:
        _cache.clear()
        _seen_version[0] = version


def raw_key_from(request) -> str | None:
    header = request.headers.get("authorization") or ""
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return (request.headers.get("x-api-key") or "").strip() or None


def _client_ip(request):
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR") or "")
    except ValueError:
        return None


async def authenticate(request, *, model=None) -> KeyContext:
    """Resolve the caller's key or raise GatewayError 401/403. `model` (the body's, when the
    view has parsed it) lets the same Redis round trip read its routes' cooldowns."""
    raw = raw_key_from(request)
    if not raw:
        raise GatewayError(
            401,
            "Missing API key. Send it as 'Authorization: Bearer KEY' or 'x-api-key: KEY'.",
            code="invalid_api_key",
        )
    digest = hash_key(raw)
    await _check_revocation_version(model)
    now = time.monotonic()
    cached = _cache.get(digest)
    if cached is None or cached[0] < now:
        ctx = await db_call(key_context_load, key_hash=digest)
        ttl = settings.ROUTING_KEY_CACHE_SECONDS if ctx is not None else NEGATIVE_TTL_SECONDS
        if len(_cache) >= MAX_CACHE_ENTRIES:
            _cache.clear()
        _cache[digest] = (now + ttl, ctx)
    else:
        ctx = cached[1]
    if ctx is None or ctx.revoked:
        raise GatewayError(401, "Invalid or revoked API key.", code="invalid_api_key")
    if ctx.expires_at is not None and ctx.expires_at <= timezone.now():
        raise GatewayError(401, "This API key has expired.", code="expired_api_key")
    if ctx.ip_networks:
        ip = _client_ip(request)
        if ip is None or not any(ip in net for net in ctx.ip_networks):
            raise GatewayError(
                403,
                "Requests from this IP address are not allowed for this key.",
                type="permission_error",
                code="ip_not_allowed",
            )
    return ctx
