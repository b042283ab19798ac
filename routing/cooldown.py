"""Route cooldown as a circuit breaker: closed, open (cooling down), half-open (one probe).

- Closed: requests flow. `ROUTING_COOLDOWN_FAILURES` failures within
  `ROUTING_COOLDOWN_WINDOW_SECONDS` open the breaker for `ROUTING_COOLDOWN_SECONDS`.
- Open: the route is skipped while another closed route of the chain can serve.
- Half-open: when no closed route is left, ONE request at a time (a probe lock) is let through
  to the open route whose cooldown ends first; a success closes the breaker at once, a
  failure re-opens it for a full cooldown, and the next probe may start
  `ROUTING_COOLDOWN_PROBE_INTERVAL_SECONDS` later. Every other request gets 503
  `upstreams_cooling_down` with `Retry-After` = the seconds until the first cooldown ends.

Two scopes: a route's global breaker (upstream failures: 5xx, timeouts, 429) and a breaker per
organization (answers about that organization's requests, e.g. a 403 policy refusal), so one
tenant's refusals never cool a shared route down for the others.

Shared across processes through Redis (a failure counter with the window as its TTL, a
cooldown key with the cooldown as its TTL, a probe key). The request path reads no Redis:
every opening and closing is published and mirrored in each process (routing/shared_state.py),
so a breaker that opens or closes anywhere is effective everywhere within 250 ms; until that
mirror is fresh a request reads the cooldown keys itself (one pipelined round trip). Taking a
half-open probe lock stays a round trip (only when no closed route is left). When Redis is
down the same logic runs on in-process state, so the gateway keeps serving. See
docs/reliability.md.
"""

from __future__ import annotations

import time

from django.conf import settings

from routing import shared_state
from routing.errors import GatewayError
from routing.redis import async_redis, redis_errors, redis_failed, sync_redis

PREFIX = "tf:cooldown:"

_FAIL_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if n >= tonumber(ARGV[2]) or ARGV[4] == '1' then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
  redis.call('DEL', KEYS[1])
  redis.call('SADD', KEYS[4], ARGV[6])
  redis.call('PUBLISH', ARGV[7], 'o ' .. ARGV[6] .. ' ' .. (tonumber(ARGV[3]) * 1000))
  if ARGV[4] == '1' then
    redis.call('SET', KEYS[3], '1', 'EX', ARGV[5])
  else
    redis.call('DEL', KEYS[3])
  end
  return 1
end
return 0
"""

# In-process fallback state, keyed by (route_id, org_id or None).
_local_failures: dict[tuple, list[float]] = {}
_local_until: dict[tuple, float] = {}
_local_probe: dict[tuple, float] = {}

# This process's copy of the open breakers in Redis (routing/shared_state.py keeps it):
# (route_id, org_id or None) -> monotonic time its cooldown ends.
_mirror: dict[tuple, float] = {}


def _conf() -> tuple[int, int, int]:
    return (
        settings.ROUTING_COOLDOWN_FAILURES,
        settings.ROUTING_COOLDOWN_WINDOW_SECONDS,
        settings.ROUTING_COOLDOWN_SECONDS,
    )


def _probe_interval() -> int:
    """After a failed half-open probe, the next one waits this long (one probe per interval
    at most while every route is down, not one per request)."""
    return max(1, int(settings.ROUTING_COOLDOWN_PROBE_INTERVAL_SECONDS))


def _suffix(org_id: int | None) -> str:
    return "" if org_id is None else f":o{org_id}"


def _key(kind: str, route_id: int, org_id: int | None = None) -> str:
    return f"{PREFIX}{kind}:{route_id}{_suffix(org_id)}"


def _member(route_id: int, org_id: int | None) -> str:
    """A breaker's name in the set of open breakers (its "on" key without the prefix)."""
    return f"{route_id}{_suffix(org_id)}"


def _scope_of(member: str) -> tuple | None:
    route, _, org = member.partition(":o")
    try:
        return int(route), (int(org) if org else None)
    except ValueError:
        return None


def mirror_replace(opened: dict[str, int], *, now: float) -> None:
    """A full re-read: `opened` maps each open breaker to its PTTL in ms (-1: no expiry)."""
    fresh = {}
    for member, ttl in opened.items():
        scope = _scope_of(member)
        if scope is not None:
            fresh[scope] = now + (ttl / 1000 if ttl >= 0 else float(_conf()[2]))
    _mirror.clear()
    _mirror.update(fresh)


def mirror_open(member: str, ttl_ms: int) -> None:
    scope = _scope_of(member)
    if scope is not None:
        _mirror[scope] = time.monotonic() + ttl_ms / 1000


def mirror_close(members: list[str]) -> None:
    for member in members:
        scope = _scope_of(member)
        if scope is not None:
            _mirror.pop(scope, None)


def _local_remaining(route_id: int, org_id: int | None) -> float:
    until = _local_until.get((route_id, org_id))
    return max(0.0, until - time.monotonic()) if until is not None else 0.0


async def _remaining(route_ids: list[int], org_id: int | None) -> dict[int, float]:
    """Seconds of cooldown left per route (the longer of its global and organization
    breakers); routes that are closed are absent. No round trip while the pushed copy is
    fresh, else one."""
    left: dict[int, float] = {}
    scopes = [None] if org_id is None else [None, org_id]
    now = time.monotonic()
    for rid in route_ids:
        for scope in scopes:
            value = _local_remaining(rid, scope)
            if value > 0:
                left[rid] = max(left.get(rid, 0.0), value)
    if await shared_state.current():
        for rid in route_ids:
            for scope in scopes:
                until = _mirror.get((rid, scope))
                if until is not None and until > now:
                    left[rid] = max(left.get(rid, 0.0), until - now)
        return left
    client = async_redis()
    if client is not None:
        try:
            pipe = client.pipeline(transaction=False)
            keys = [(rid, _key("on", rid, scope)) for rid in route_ids for scope in scopes]
            for _rid, key in keys:
                pipe.pttl(key)
            for (rid, _key_name), ttl in zip(keys, await pipe.execute(), strict=True):
                if ttl is not None and ttl != -2:
                    seconds = ttl / 1000 if ttl >= 0 else float(_conf()[2])
                    left[rid] = max(left.get(rid, 0.0), seconds)
        except redis_errors as exc:
            redis_failed(exc, "cooldown")
    return left


async def cooled_down(route_ids: list[int], *, org_id: int | None = None) -> set[int]:
    """The ids among `route_ids` whose breaker is open now (globally or for `org_id`)."""
    if not route_ids:
        return set()
    return set(await _remaining(route_ids, org_id))


async def _probe_acquire(route_id: int, org_id: int | None, seconds: int) -> bool:
    client = async_redis()
    if client is not None:
        try:
            return bool(await client.set(_key("probe", route_id, org_id), "1", nx=True, ex=seconds))
        except redis_errors as exc:
            redis_failed(exc, "cooldown")
    now = time.monotonic()
    if _local_probe.get((route_id, org_id), 0.0) > now:
        return False
    _local_probe[(route_id, org_id)] = now + seconds
    return True


async def breaker_chain(chain: list, *, org_id: int | None, model: str) -> tuple[list, int | None]:
    """The routes of `chain` (RouteEntry) this request may try, and the id of the route it
    probes half-open (None when closed routes are left). Raises 503 when every route is open
    and another request is already probing."""
    left = await _remaining([r.route_id for r in chain], org_id)
    if not left:
        return chain, None
    closed = [r for r in chain if r.route_id not in left]
    if closed:
        return closed, None
    first = min(chain, key=lambda r: (left[r.route_id], chain.index(r)))
    seconds = _conf()[2]
    # The probe lock belongs to the scope that is open: the route's own when it is open for
    # everyone, else this organization's.
    global_left = await _remaining([first.route_id], None)
    scope = None if global_left else org_id
    if await _probe_acquire(first.route_id, scope, max(1, min(seconds, 30))):
        return [first], first.route_id
    retry = max(1, int(min(left.values()) + 0.999))
    raise GatewayError(
        503,
        f"Every route for '{model}' is cooling down after repeated failures and one is being "
        "probed now; retry shortly.",
        type="api_error",
        code="upstreams_cooling_down",
        headers={"Retry-After": str(retry)},
    )


async def failure_record(route_id: int, *, org_id: int | None = None, reopen: bool = False) -> bool:
    """Count a failure (for the route, or for the route and `org_id` only); True when it
    opened the breaker. `reopen`: a half-open probe failed, open it again at once."""
    failures, window, seconds = _conf()
    client = async_redis()
    if client is not None:
        try:
            result = await client.eval(
                _FAIL_SCRIPT,
                4,
                _key("fail", route_id, org_id),
                _key("on", route_id, org_id),
                _key("probe", route_id, org_id),
                shared_state.OPEN_BREAKERS_KEY,
                window,
                failures,
                seconds,
                "1" if reopen else "0",
                _probe_interval(),
                _member(route_id, org_id),
                shared_state.CHANNEL,
            )
            if result:  # this process sees it at once; the others through the event
                _mirror[(route_id, org_id)] = time.monotonic() + seconds
            return bool(result)
        except redis_errors as exc:
            redis_failed(exc, "cooldown")
    now = time.monotonic()
    scope = (route_id, org_id)
    recent = [t for t in _local_failures.get(scope, []) if t > now - window] + [now]
    if reopen or len(recent) >= failures:
        _local_until[scope] = now + seconds
        _local_failures.pop(scope, None)
        if reopen:
            _local_probe[scope] = now + _probe_interval()
        else:
            _local_probe.pop(scope, None)
        return True
    _local_failures[scope] = recent
    return False


async def success_record(route_id: int, *, org_id: int | None = None) -> None:
    """A half-open probe succeeded: close the route's breakers (global and `org_id`) now."""
    scopes = [None] if org_id is None else [None, org_id]
    for scope in scopes:
        _local_until.pop((route_id, scope), None)
        _local_failures.pop((route_id, scope), None)
        _local_probe.pop((route_id, scope), None)
        _mirror.pop((route_id, scope), None)
    client = async_redis()
    if client is not None:
        try:
            await _close_pipeline(client, route_id, scopes).execute()
        except redis_errors as exc:
            redis_failed(exc, "cooldown")


def _close_pipeline(client, route_id: int, scopes: list):
    """Close breakers in Redis and tell every process (one round trip)."""
    members = [_member(route_id, scope) for scope in scopes]
    pipe = client.pipeline(transaction=False)
    pipe.delete(
        *[_key(kind, route_id, scope) for scope in scopes for kind in ("on", "fail", "probe")]
    )
    pipe.srem(shared_state.OPEN_BREAKERS_KEY, *members)
    pipe.publish(shared_state.CHANNEL, "c " + " ".join(members))
    return pipe


def breaker_open_now(route_id: int, *, org_id: int | None = None, seconds: int | None = None):
    """Operators and tests: open a breaker from synchronous code, as failures would."""
    client = sync_redis()
    if client is None:
        return
    seconds = seconds or _conf()[2]
    member = _member(route_id, org_id)
    pipe = client.pipeline(transaction=False)
    pipe.set(_key("on", route_id, org_id), "1", ex=seconds)
    pipe.sadd(shared_state.OPEN_BREAKERS_KEY, member)
    pipe.publish(shared_state.CHANNEL, f"o {member} {seconds * 1000}")
    pipe.execute()


def breaker_close_now(route_id: int, *, org_id: int | None = None) -> None:
    """Operators and tests: close a route's breakers (global, and `org_id`'s) at once."""
    client = sync_redis()
    if client is not None:
        _close_pipeline(client, route_id, [None] if org_id is None else [None, org_id]).execute()


def cooldown_reset_local() -> None:
    _mirror.clear()
    _local_failures.clear()
    _local_until.clear()
    _local_probe.clear()
