"""Key revocations and open circuit breakers pushed to each process: the request path reads
them in-process, with no Redis round trip.

Each event loop that serves requests runs one background task (started lazily on first use,
cancelled with its loop, so a Celery task's short `asyncio.run` leaves nothing behind). The
task subscribes to the `tf:events` channel, where every revocation (`routing.auth`) and every
breaker opening or closing (`routing.cooldown`) is published by the script that makes the
change, and applies each event at once. Pub/sub is fire-and-forget (a reconnect loses
messages), so the task also re-reads the whole state every `POLL_SECONDS` (one script: the
revocation version and the set of open breakers with their time left).

Staleness bound: the in-process state is trusted only while its last full re-read started
less than `STALENESS_BOUND_SECONDS` (250 ms) ago. A revocation, or a breaker opening or
closing in any process, is therefore effective everywhere within 250 ms (within a few
milliseconds when its event arrives, which is the normal case). When the task is not running
yet (a loop's first requests) or Redis is unreachable, callers fall back to reading Redis
directly, and from there to the in-process degraded mode (routing/redis.py); when it lags (a
busy loop), the requests that find the state stale share one re-read (`current()`). State
older than the bound is never used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from dataclasses import dataclass

from routing.redis import async_redis, redis_errors, redis_failed, redis_url

log = logging.getLogger("routing.shared_state")

CHANNEL = "tf:events"
STALENESS_BOUND_SECONDS = 0.25
POLL_SECONDS = 0.1
RETRY_SECONDS = 0.5
FIRST_READ_SECONDS = 1.0  # how long a loop's first requests wait for its first snapshot

# Shared with routing.auth and routing.cooldown (they write these keys; see their scripts).
REVOCATION_VERSION_KEY = "tf:keys:revocation-version"
OPEN_BREAKERS_KEY = "tf:cooldown:open"  # members: the suffix of each open breaker's "on" key
BREAKER_ON_PREFIX = "tf:cooldown:on:"

# One read of everything pushed: the revocation version, then each open breaker and its PTTL
# (members whose cooldown ended are pruned from the set here). It also writes the queued TPM
# corrections of routing/ratelimit.py (ARGV[2..]: key, tokens, ...).
_SNAPSHOT = """
for i = 2, #ARGV, 2 do
  redis.call('INCRBY', ARGV[i], ARGV[i + 1]); redis.call('EXPIRE', ARGV[i], 61)
end
local out = {redis.call('GET', KEYS[1]) or '0'}
for _, member in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local ttl = redis.call('PTTL', ARGV[1] .. member)
  if ttl == -2 then
    redis.call('SREM', KEYS[2], member)
  else
    table.insert(out, member)
    table.insert(out, ttl)
  end
end
return out
"""


@dataclass(slots=True)
class _Listener:
    task: asyncio.Task | None = None
    ready: asyncio.Future | None = None  # the first snapshot: True applied, False failed
    fresh_until: float = 0.0
    snapshot: object | None = None  # the registered script while subscribed, else None
    applied: float = 0.0  # when the newest snapshot applied was started
    refreshing: asyncio.Task | None = None
    refresh_started: float = 0.0


_listeners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Listener] = (
    weakref.WeakKeyDictionary()
)


def fresh() -> bool:
    """True when this loop's in-process copy may be used instead of asking Redis (its last
    full re-read is younger than the bound). Starts the listener on first call."""
    if not redis_url():
        return False
    loop = asyncio.get_running_loop()
    listener = _listeners.get(loop)
    if listener is None or listener.task is None or listener.task.done():
        listener = _Listener(ready=loop.create_future())
        _listeners[loop] = listener
        listener.task = loop.create_task(_run(listener), name="tokenforge-shared-state")
        return False
    return time.monotonic() < listener.fresh_until


async def current() -> bool:
    """`fresh()`, or else wait for one re-read of the state shared by every request that asks
    meanwhile (started at most the staleness bound before this call), True once applied.

    Profile: when a burst of requests keeps the event loop busy past the bound, the periodic
    re-read runs late and every request fell back to a Redis round trip of its own (1,000
    streams opening at once: a quarter of the worker's CPU in Redis connections and PINGs),
    which only made the loop later. Now the whole burst waits for one read. False (read Redis
    directly, as before) when the listener is not subscribed or the read fails."""
    if fresh():
        return True
    listener = _listeners.get(asyncio.get_running_loop())
    if listener is None:
        return False
    if listener.snapshot is None:
        # A worker's first requests (its listener just started) wait for its first snapshot
        # too: a burst that reaches a worker no request has woken yet otherwise opened a Redis
        # connection per request (a 2,000-stream run went from 1.4 s to 4.9 s p50 that way).
        if listener.ready is None or listener.ready.done():
            return False  # not subscribed (Redis unreachable, reconnecting): read it directly
        try:
            return await asyncio.wait_for(asyncio.shield(listener.ready), FIRST_READ_SECONDS)
        except TimeoutError:
            return False
    now = time.monotonic()
    task = listener.refreshing
    if task is None or task.done() or now - listener.refresh_started > STALENESS_BOUND_SECONDS:
        task = listener.refreshing = asyncio.ensure_future(_refresh(listener, now))
        listener.refresh_started = now
    try:
        return await asyncio.shield(task)
    except Exception:  # noqa: BLE001 - reported by redis_failed; the caller reads Redis
        return False


def _ready(listener: _Listener, applied: bool) -> None:
    if listener.ready is not None and not listener.ready.done():
        listener.ready.set_result(applied)


async def _refresh(listener: _Listener, started: float) -> bool:
    if listener.snapshot is None:
        return False
    try:
        await _read(listener, listener.snapshot, started)
    except redis_errors as exc:
        redis_failed(exc, "shared state")
        return False
    return True


async def _read(listener: _Listener, snapshot, started: float) -> None:
    """One full re-read (it also writes the queued TPM corrections), applied unless a newer
    one was applied meanwhile."""
    from routing.ratelimit import pending_tokens_take

    reply = await snapshot(
        keys=[REVOCATION_VERSION_KEY, OPEN_BREAKERS_KEY],
        args=[BREAKER_ON_PREFIX, *pending_tokens_take()],
    )
    _applied(listener, reply, started)


def _applied(listener: _Listener, reply: list, started: float) -> None:
    """Apply a snapshot unless a newer one (started later) was applied already."""
    if started < listener.applied:
        return
    listener.applied = started
    _apply_snapshot(reply, started)
    listener.fresh_until = max(listener.fresh_until, started + STALENESS_BOUND_SECONDS)


async def stop() -> None:
    """Stop this loop's listener (tests; a loop that ends cancels it anyway)."""
    listener = _listeners.pop(asyncio.get_running_loop(), None)
    if listener is not None and listener.task is not None:
        listener.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener.task


async def _run(listener: _Listener) -> None:
    loop = asyncio.get_running_loop()
    try:
        await _serve(listener)
    finally:  # the entry would keep a closed loop alive (it references it through the task)
        if _listeners.get(loop) is listener:
            del _listeners[loop]


async def _serve(listener: _Listener) -> None:
    while True:
        client = async_redis()
        if client is None:
            listener.fresh_until = 0.0
            _ready(listener, False)
            await asyncio.sleep(RETRY_SECONDS)
            continue
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(CHANNEL)
            # Confirmed before the first read: no event can fall between the two.
            confirmed = await pubsub.get_message(timeout=1.0)
            if confirmed is None or confirmed.get("type") != "subscribe":
                raise TimeoutError("no subscribe confirmation")
            await _listen(listener, client, pubsub)
        except asyncio.CancelledError:
            raise
        except redis_errors as exc:
            listener.fresh_until = 0.0
            redis_failed(exc, "shared state")
            await asyncio.sleep(RETRY_SECONDS)
        except Exception:  # noqa: BLE001 - the listener must outlive a bad message
            listener.fresh_until = 0.0
            log.exception("shared state listener failed; restarting")
            await asyncio.sleep(RETRY_SECONDS)
        finally:
            listener.fresh_until = 0.0
            listener.snapshot = None
            _ready(listener, False)
            with contextlib.suppress(Exception):
                await pubsub.aclose()


async def _listen(listener: _Listener, client, pubsub) -> None:
    snapshot = client.register_script(_SNAPSHOT)
    while True:
        started = time.monotonic()
        await _read(listener, snapshot, started)
        listener.snapshot = snapshot
        _ready(listener, True)
        deadline = started + POLL_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
            if message is not None and message.get("type") == "message":
                event_apply(message["data"])


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _apply_snapshot(reply: list, started: float) -> None:
    from routing import auth, cooldown

    auth.revocation_version_seen(int(_text(reply[0]) or 0))
    opened = {}
    for i in range(1, len(reply) - 1, 2):
        opened[_text(reply[i])] = int(reply[i + 1])
    cooldown.mirror_replace(opened, now=started)


def event_apply(data) -> None:
    """Apply one published event: `r VERSION KEY_HASH` (a key was revoked), `o MEMBER MS`
    (a breaker opened for MS milliseconds), `c MEMBER...` (breakers closed)."""
    from routing import auth, cooldown

    parts = _text(data).split()
    if not parts:
        return
    if parts[0] == "r" and len(parts) == 3:
        auth.revocation_event(int(parts[1]), parts[2])
    elif parts[0] == "o" and len(parts) == 3:
        cooldown.mirror_open(parts[1], int(parts[2]))
    elif parts[0] == "c":
        cooldown.mirror_close(parts[1:])
