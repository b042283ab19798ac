"""Redis clients for the gateway's shared state (rate limits, cooldowns, revocations).

Redis is an accelerator, never a single point of failure: every caller catches
`redis_errors` and degrades to in-process state. After a failure, Redis is skipped for a
few seconds so a dead server costs no connect timeout per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref

import redis
import redis.asyncio as aioredis
import redis.exceptions
from django.conf import settings

log = logging.getLogger("routing.redis")

redis_errors = (redis.exceptions.RedisError, OSError, asyncio.TimeoutError)
SKIP_AFTER_FAILURE_SECONDS = 2.0
_down_until = 0.0
_async_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_sync_client: redis.Redis | None = None


def redis_url() -> str:
    return getattr(settings, "REDIS_URL", "") or ""


def redis_available() -> bool:
    return bool(redis_url()) and time.monotonic() >= _down_until


def redis_failed(exc: BaseException, what: str) -> None:
    """Mark Redis down for a moment; log once per episode (never with secrets)."""
    global _down_until
    if time.monotonic() >= _down_until:
        log.warning(
            "redis unavailable for %s (%s); degrading to in-process", what, type(exc).__name__
        )
    _down_until = time.monotonic() + SKIP_AFTER_FAILURE_SECONDS


def redis_reset_state() -> None:
    """Tests: forget a past failure."""
    global _down_until
    _down_until = 0.0


def async_redis() -> aioredis.Redis | None:
    if not redis_available():
        return None
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = aioredis.Redis.from_url(
            redis_url(), socket_connect_timeout=0.3, socket_timeout=0.5, health_check_interval=30
        )
        _async_clients[loop] = client
    return client


def sync_redis() -> redis.Redis | None:
    global _sync_client
    if not redis_available():
        return None
    if _sync_client is None:
        _sync_client = redis.Redis.from_url(
            redis_url(), socket_connect_timeout=0.3, socket_timeout=0.5
        )
    return _sync_client
