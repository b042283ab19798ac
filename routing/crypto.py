"""Upstream secrets encrypted at rest with Fernet (AES-128-CBC + HMAC).

`FIELD_ENCRYPTION_KEY` may hold several comma-separated keys: the first encrypts, all
decrypt, so an operator can rotate keys without a migration. In DEBUG without a key a dev
key is derived from SECRET_KEY, so `make run` works with no configuration.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    raw = (getattr(settings, "FIELD_ENCRYPTION_KEY", "") or "").strip()
    if raw:
        keys = [k.strip() for k in raw.split(",") if k.strip()]
    elif settings.DEBUG:
        digest = hashlib.sha256(("tokenforge-field-key:" + settings.SECRET_KEY).encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    else:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY must be set when DEBUG is off.")
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except ValueError as exc:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY is not a valid Fernet key.") from exc


def secret_encrypt(plain: str) -> str:
    if not plain:
        return ""
    return _fernet().encrypt(plain.encode()).decode()


def secret_decrypt(token: str) -> str:
    """Empty for no secret. A token no configured key opens raises ImproperlyConfigured."""
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "An upstream secret cannot be decrypted with FIELD_ENCRYPTION_KEY."
        ) from exc
