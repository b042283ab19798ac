"""Per-key RPM/TPM limits and the concurrent-stream limit, shared by every process via Redis.

Fixed one-minute windows, checked and counted atomically by one Lua script per request: one
round trip in all (none for a key without limits). TPM counts the prompt's estimate at
admission and the real total at settlement (`tokens_add`); that correction costs no round
trip of its own while this loop's shared-state task runs (routing/shared_state.py): it is
queued and sent with the key's next admission in this process or the task's next re-read,
whichever comes first (within 100 ms). When Redis is down the limits run on in-process
counters and a warning is logged: over-admitting a little beats refusing every request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from routing import shared_state
from routing.redis import async_redis, redis_errors, redis_failed

PREFIX = "tf:rl:"
STREAM_SLOT_TTL = 3600  # a crashed process's stream slots are forgotten after this

# RPM, TPM and (for a stream) a concurrent-stream slot, checked first and then counted: a
# refused request consumes nothing. One round trip.
_ADMIT = """
local pending = tonumber(ARGV[10])
if pending ~= 0 then
  redis.call('INCRBY', KEYS[2], pending); redis.call('EXPIRE', KEYS[2], ARGV[4])
end
local rpm_limit = tonumber(ARGV[1])
local tpm_limit = tonumber(ARGV[2])
local tokens = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local stream_limit = tonumber(ARGV[5])
if rpm_limit > 0 then
  local n = tonumber(redis.call('GET', KEYS[1]) or '0')
  if n >= rpm_limit then return {1, redis.call('TTL', KEYS[1])} end
end
if tpm_limit > 0 then
  local t = tonumber(redis.call('GET', KEYS[2]) or '0')
  if t > 0 and t + tokens > tpm_limit then return {2, redis.call('TTL', KEYS[2])} end
end
if stream_limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[6])
  if redis.call('ZCARD', KEYS[3]) >= stream_limit then return {3, 1} end
end
if rpm_limit > 0 then
  redis.call('INCR', KEYS[1]); redis.call('EXPIRE', KEYS[1], ttl)
end
if tpm_limit > 0 then
  redis.call('INCRBY', KEYS[2], tokens); redis.call('EXPIRE', KEYS[2], ttl)
end
if stream_limit > 0 then
  redis.call('ZADD', KEYS[3], ARGV[7], ARGV[8])
  redis.call('EXPIRE', KEYS[3], ARGV[9])
end
return {0, 0}
"""

_STREAM_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: str = ""  # "rpm" | "tpm" | "streams"
    retry_after: int = 0


_local_counts: dict[str, int] = {}
# TPM corrections not yet sent to Redis: TPM key -> tokens (see the module docstring).
_pending_tokens: dict[str, int] = {}
_local_streams: dict[int, set[str]] = {}


def _window() -> tuple[int, int]:
    now = int(time.time())
    return now // 60, 60 - now % 60


async def admit(
    *,
    key_id: int,
    rpm_limit: int | None,
    tpm_limit: int | None,
    tokens: int,
    stream_limit: int | None = None,
    request_id: str = "",
) -> Decision:
    """Check and count one request against the key's limits; with `stream_limit`, also take
    one of its concurrent-stream slots (as `request_id`, released by `stream_release`)."""
    if not rpm_limit and not tpm_limit and not stream_limit:
        return Decision(True)
    window, remaining = _window()
    rpm_key, tpm_key = f"{PREFIX}rpm:{key_id}:{window}", f"{PREFIX}tpm:{key_id}:{window}"
    client = async_redis()
    if client is not None:
        now = time.time()
        pending = _pending_tokens.pop(tpm_key, 0)  # at most once: dropped if Redis fails
        try:
            code, ttl = await client.eval(
                _ADMIT,
                3,
                rpm_key,
                tpm_key,
                f"{PREFIX}streams:{key_id}",
                rpm_limit or 0,
                tpm_limit or 0,
                tokens,
                61,
                stream_limit or 0,
                now - STREAM_SLOT_TTL,
                now,
                request_id,
                STREAM_SLOT_TTL,
                pending,
            )
            code, ttl = int(code), int(ttl)
            if code == 0:
                return Decision(True)
            if code == 3:
                return Decision(False, "streams", 1)
            return Decision(False, "rpm" if code == 1 else "tpm", max(1, min(ttl, remaining)))
        except redis_errors as exc:
            redis_failed(exc, "rate limits")
    # In-process fallback: same arithmetic on a dict, pruned to the current window.
    for stale in [k for k in _local_counts if not k.endswith(f":{window}")]:
        _local_counts.pop(stale, None)
    if rpm_limit and _local_counts.get(rpm_key, 0) >= rpm_limit:
        return Decision(False, "rpm", remaining)
    used = _local_counts.get(tpm_key, 0)
    if tpm_limit and used > 0 and used + tokens > tpm_limit:
        return Decision(False, "tpm", remaining)
    slots = _local_streams.setdefault(key_id, set()) if stream_limit else set()
    if stream_limit and len(slots) >= stream_limit:
        return Decision(False, "streams", 1)
    if rpm_limit:
        _local_counts[rpm_key] = _local_counts.get(rpm_key, 0) + 1
    if tpm_limit:
        _local_counts[tpm_key] = used + tokens
    if stream_limit:
        slots.add(request_id)
    return Decision(True)


async def tokens_add(*, key_id: int, tpm_limit: int | None, tokens: int) -> None:
    """Correct the TPM window with the real usage once known (may be negative)."""
    if not tpm_limit or tokens == 0:
        return
    window, _ = _window()
    tpm_key = f"{PREFIX}tpm:{key_id}:{window}"
    client = async_redis()
    if client is not None and shared_state.fresh():
        _pending_tokens[tpm_key] = _pending_tokens.get(tpm_key, 0) + tokens
        return
    if client is not None:
        try:
            pipe = client.pipeline(transaction=False)  # one round trip
            pipe.incrby(tpm_key, tokens)
            pipe.expire(tpm_key, 61)
            await pipe.execute()
            return
        except redis_errors as exc:
            redis_failed(exc, "rate limits")
    _local_counts[tpm_key] = _local_counts.get(tpm_key, 0) + tokens


def pending_tokens_take() -> list:
    """The queued TPM corrections as flat [key, tokens, ...], for the shared-state task's
    next re-read (which sends them; dropped if it fails, like a failed admission's)."""
    flat: list = []
    while _pending_tokens:
        key, tokens = _pending_tokens.popitem()
        if tokens:
            flat += [key, tokens]
    return flat


async def stream_acquire(*, key_id: int, limit: int | None, request_id: str) -> bool:
    """A stream slot alone (the engine takes it with `admit`, in the same round trip)."""
    if not limit:
        return True
    now = time.time()
    client = async_redis()
    if client is not None:
        try:
            ok = await client.eval(
                _STREAM_ACQUIRE,
                1,
                f"{PREFIX}streams:{key_id}",
                now - STREAM_SLOT_TTL,
                limit,
                now,
                request_id,
                STREAM_SLOT_TTL,
            )
            return bool(ok)
        except redis_errors as exc:
            redis_failed(exc, "stream limit")
    slots = _local_streams.setdefault(key_id, set())
    if len(slots) >= limit:
        return False
    slots.add(request_id)
    return True


async def stream_release(*, key_id: int, limit: int | None, request_id: str) -> None:
    if not limit:
        return
    _local_streams.get(key_id, set()).discard(request_id)
    client = async_redis()
    if client is not None:
        try:
            await client.zrem(f"{PREFIX}streams:{key_id}", request_id)
        except redis_errors as exc:
            redis_failed(exc, "stream limit")


def ratelimit_reset_local() -> None:
    _pending_tokens.clear()
    _local_counts.clear()
    _local_streams.clear()
