"""API-key authentication for /v1/: `Authorization: Bearer KEY` or `x-api-key: KEY`.

A hot key costs no query and no Redis round trip: resolved keys are cached in-process for a
short TTL. Revocation still takes effect everywhere within 250 ms: `key_revoke` calls our
hook, which clears this process's entry, bumps a revocation version in Redis and publishes
the event; every process applies it as it arrives and re-reads the version in the background
(routing/shared_state.py), dropping its cache when the version moved. Until that background
copy is fresh, a request reads the version itself (one GET). Without Redis the TTL bounds
staleness in other processes.
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
from routing import shared_state
from routing.db import db_call
from routing.errors import GatewayError
from routing.redis import async_redis, redis_errors, redis_failed, sync_redis

log = logging.getLogger("routing.auth")

REVOCATION_VERSION_KEY = shared_state.REVOCATION_VERSION_KEY
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
_seen_version: list = [None]  # the revocation version this process's cache reflects (an int)
# Bumped by every invalidation: a key loaded while one happened is served but not cached
# (its row may predate the revocation that just arrived).
_generation: list = [0]

# Bump the version and tell every process, in one round trip.
_REVOKE = """
local version = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[1], 'r ' .. version .. ' ' .. ARGV[2])
return version
"""


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
    _generation[0] += 1
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
            client.eval(_REVOKE, 1, REVOCATION_VERSION_KEY, shared_state.CHANNEL, key_hash)
        except redis_errors as exc:
            redis_failed(exc, "key revocation")


def revocation_version_seen(version: int) -> None:
    """The current revocation version (read from Redis): drop the cache when it moved."""
    if version != _seen_version[0]:
        key_cache_invalidate()
        _seen_version[0] = version


def revocation_event(version: int, key_hash: str) -> None:
    """A revocation published by some process: forget that key now. The version is adopted
    only when it is the next one; after a missed event the background re-read sees the
    version move and clears the whole cache."""
    key_cache_invalidate(key_hash)
    if _seen_version[0] is not None and version == _seen_version[0] + 1:
        _seen_version[0] = version


async def _check_revocation_version() -> None:
    if await shared_state.current():
        return  # revocations are pushed to this process (routing/shared_state.py)
    client = async_redis()
    if client is None:
        return
    try:
        version = await client.get(REVOCATION_VERSION_KEY)
    except redis_errors as exc:
        redis_failed(exc, "key revocation")
        return
    revocation_version_seen(int(version or 0))


def raw_key_of(authorization: str | None, x_api_key: str | None) -> str | None:
    header = authorization or ""
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return (x_api_key or "").strip() or None


def raw_key_from(request) -> str | None:
    return raw_key_of(request.headers.get("authorization"), request.headers.get("x-api-key"))


def _client_ip(remote_addr: str | None):
    try:
        return ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return None


# Where routing.asgi leaves the context it resolved from the headers, before the body was read.
SCOPE_KEY = "tokenforge.key_context"


async def authenticate(request) -> KeyContext:
    """Resolve the caller's key or raise GatewayError 401/403 (once per request: the ASGI
    handler already did it from the headers when the request carries a body)."""
    scope = getattr(request, "scope", None)
    ctx = scope.get(SCOPE_KEY) if isinstance(scope, dict) else None
    if ctx is not None:
        return ctx
    return await authenticate_key(
        raw=raw_key_from(request), remote_addr=request.META.get("REMOTE_ADDR")
    )


async def authenticate_key(*, raw: str | None, remote_addr: str | None) -> KeyContext:
    """The key check itself, from the header values alone (no request object needed)."""
    if not raw:
        raise GatewayError(
            401,
            "Missing API key. Send it as 'Authorization: Bearer KEY' or 'x-api-key: KEY'.",
            code="invalid_api_key",
        )
    digest = hash_key(raw)
    await _check_revocation_version()
    now = time.monotonic()
    cached = _cache.get(digest)
    if cached is None or cached[0] < now:
        generation = _generation[0]
        ctx = await db_call(key_context_load, key_hash=digest)
        ttl = settings.ROUTING_KEY_CACHE_SECONDS if ctx is not None else NEGATIVE_TTL_SECONDS
        if len(_cache) >= MAX_CACHE_ENTRIES:
            _cache.clear()
        if generation == _generation[0]:
            _cache[digest] = (now + ttl, ctx)
    else:
        ctx = cached[1]
    if ctx is None or ctx.revoked:
        raise GatewayError(401, "Invalid or revoked API key.", code="invalid_api_key")
    if ctx.expires_at is not None and ctx.expires_at <= timezone.now():
        raise GatewayError(401, "This API key has expired.", code="expired_api_key")
    if ctx.ip_networks:
        ip = _client_ip(remote_addr)
        if ip is None or not any(ip in net for net in ctx.ip_networks):
            raise GatewayError(
                403,
                "Requests from this IP address are not allowed for this key.",
                type="permission_error",
                code="ip_not_allowed",
            )
    return ctx
