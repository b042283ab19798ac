"""Route cooldown: N failures within a window cool a route down for a while.

Shared across processes through Redis (a failure counter with the window as its TTL, and a
cooldown key with the cooldown as its TTL). When Redis is down the same logic runs on
in-process state, so the gateway keeps serving.
"""

from __future__ import annotations

import time
from contextvars import ContextVar

from django.conf import settings

from routing.redis import async_redis, redis_errors, redis_failed

PREFIX = "tf:cooldown:"

_FAIL_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if n >= tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

_local_failures: dict[int, list[float]] = {}
_local_until: dict[int, float] = {}

# Cooldown flags read by `routing.auth` in the same Redis round trip as the key's revocation
# version (one MGET instead of a GET and an MGET per request): {route_id: cooling down}. Set
# and consumed within one request's task; `cooled_down` falls back to its own MGET otherwise.
_prefetched: ContextVar[dict[int, bool] | None] = ContextVar("tf_cooldown_prefetch", default=None)


def prefetch_keys(route_ids: list[int]) -> list[str]:
    return [f"{PREFIX}on:{rid}" for rid in route_ids]


def prefetch_store(route_ids: list[int], values: list) -> None:
    _prefetched.set({rid: v is not None for rid, v in zip(route_ids, values, strict=True)})


def _conf() -> tuple[int, int, int]:
    return (
        settings.ROUTING_COOLDOWN_FAILURES,
        settings.ROUTING_COOLDOWN_WINDOW_SECONDS,
        settings.ROUTING_COOLDOWN_SECONDS,
    )


def _local_cooled(route_id: int) -> bool:
    until = _local_until.get(route_id)
    return until is not None and until > time.monotonic()


async def cooled_down(route_ids: list[int]) -> set[int]:
    """The ids among `route_ids` that are cooling down now (one round trip)."""
    if not route_ids:
        return set()
    cooled = {rid for rid in route_ids if _local_cooled(rid)}
    prefetched = _prefetched.get()
    if prefetched is not None:
        _prefetched.set(None)  # read once: a later call in this request asks Redis again
        if all(rid in prefetched for rid in route_ids):
            return cooled | {rid for rid in route_ids if prefetched[rid]}
    client = async_redis()
    if client is not None:
        try:
            values = await client.mget(prefetch_keys(route_ids))
            cooled |= {rid for rid, v in zip(route_ids, values, strict=True) if v is not None}
        except redis_errors as exc:
            redis_failed(exc, "cooldown")
    return cooled


async def failure_record(route_id: int) -> bool:
    """Count a failure; True when it cooled the route down."""
    failures, window, seconds = _conf()
    client = async_redis()
    if client is not None:
        try:
            result = await client.eval(
                _FAIL_SCRIPT,
                2,
                f"{PREFIX}fail:{route_id}",
                f"{PREFIX}on:{route_id}",
                window,
                failures,
                seconds,
            )
            return bool(result)
        except redis_errors as exc:
            redis_failed(exc, "cooldown")
    now = time.monotonic()
    recent = [t for t in _local_failures.get(route_id, []) if t > now - window] + [now]
    if len(recent) >= failures:
        _local_until[route_id] = now + seconds
        _local_failures.pop(route_id, None)
        return True
    _local_failures[route_id] = recent
    return False


def cooldown_reset_local() -> None:
    _local_failures.clear()
    _local_until.clear()
