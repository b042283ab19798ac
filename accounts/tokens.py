"""Management-API tokens: create (shown once), authenticate, revoke. Services and selectors.

Tokens replace DRF's authtoken, which stored the key in plain text, never expired and handed
the same key back to every caller of /api/auth/token/. Here every call creates a new token,
only its SHA-256 is stored, each one expires (`API_TOKEN_TTL_DAYS`), records when it was last
used, and a password change or reset revokes all of the user's tokens.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import ApiToken, TokenRevokedReason, User

TOKEN_PREFIX = "tfm_"
PREFIX_LENGTH = 10  # "tfm_" and six characters: enough to tell tokens apart in a list
MAX_TTL_DAYS = 366


TokenReason = TokenRevokedReason


@dataclass(frozen=True)
class CreatedToken:
    token: ApiToken
    secret: str  # shown once; never stored


def api_token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_token_create(
    *, user: User, name: str = "", expires_in_days: int | None = None
) -> CreatedToken:
    """A new token for `user`; the secret is only in the return value."""
    days = settings.API_TOKEN_TTL_DAYS if expires_in_days is None else int(expires_in_days)
    if not 1 <= days <= MAX_TTL_DAYS:
        raise ValueError(f"A token lives between 1 and {MAX_TTL_DAYS} days.")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(30)
    token = ApiToken.objects.create(
        user=user,
        name=str(name or "").strip()[:120],
        prefix=secret[:PREFIX_LENGTH],
        token_hash=api_token_hash(secret),
        expires_at=timezone.now() + timedelta(days=days),
    )
    audit_record(
        org=None,
        actor=user,
        action="apitoken.create",
        target=token,
        changes={"name": token.name, "prefix": token.prefix, "expires_at": str(token.expires_at)},
    )
    return CreatedToken(token=token, secret=secret)


def api_token_authenticate(*, secret: str) -> ApiToken | None:
    """The live token for `secret` (not revoked, not expired, its user active), or None.
    Records the use at most once a minute per token (one conditional UPDATE)."""
    if not secret or len(secret) > 200:  # tokens migrated from authtoken lack the tfm_ prefix
        return None
    now = timezone.now()
    token = (
        ApiToken.objects.select_related("user")
        .filter(token_hash=api_token_hash(secret), revoked_at__isnull=True, expires_at__gt=now)
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    stale = now - timedelta(seconds=settings.API_TOKEN_LAST_USED_GRANULARITY_SECONDS)
    if token.last_used_at is None or token.last_used_at < stale:
        ApiToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale)
        ).update(last_used_at=now)
        token.last_used_at = now
    return token


def api_token_revoke(*, token: ApiToken, actor: User | None, reason: str = TokenReason.USER):
    """Revoke one token; revoking twice keeps the first time and reason."""
    updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_reason=reason
    )
    if updated:
        audit_record(
            org=None,
            actor=actor,
            action="apitoken.revoke",
            target=token,
            changes={"prefix": token.prefix, "reason": reason},
        )
    token.refresh_from_db()
    return token


def api_tokens_revoke_for_user(*, user: User, reason: str) -> int:
    """Revoke every live token of `user` (a password change or reset): how many."""
    count = ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_reason=reason
    )
    if count:
        audit_record(
            org=None,
            actor=user,
            action="apitoken.revoke_all",
            target=user,
            changes={"count": count, "reason": reason},
        )
    return count


def api_tokens_of(*, user: User) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-pk")


def api_token_of(*, user: User, pk: int) -> ApiToken | None:
    return ApiToken.objects.filter(user=user, pk=pk).first()
