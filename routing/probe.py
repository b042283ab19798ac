"""Health probes the gateway sends itself before it disables a shared upstream.

A 401 or a quota answer to one tenant's request is only a hint: the upstream may be a relay
that answers 401 for that request's content, or the answer may be forged by a misbehaving
relay. Before an upstream is disabled for everyone, the gateway checks its credentials with
its own request (never the tenant's body):

- OpenAI-format: `GET {base_url}/models` (free); when the hint was a quota answer, or the
  relay has no /models, a one-token chat completion (the provider's cheapest call).
- Anthropic and Gemini: a one-token request to the route's model.

The answer is cached per upstream for `PROBE_CACHE_SECONDS` and one probe per upstream runs
at a time in a process, so a burst of 401s costs one probe, not one each.
"""

from __future__ import annotations

import asyncio
import logging
import time

from routing.http import UpstreamTransportError, http_client
from routing.providers import get_provider
from routing.providers.base import UnsupportedFeature, UpstreamError, UpstreamTarget

log = logging.getLogger("routing.probe")

PROBE_CACHE_SECONDS = 10.0
PROBE_TIMEOUT_SECONDS = 10.0
PROBE_BODY = {"messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}

_cache: dict[str, tuple[float, bool | None]] = {}
_locks: dict[str, asyncio.Lock] = {}


def _quota_hint(error: UpstreamError) -> bool:
    text = f"{error.error_type or ''} {error.message}".lower()
    return "quota" in text or "credit balance" in text or "billing" in text


async def _models_status(target: UpstreamTarget) -> int | None:
    url = target.base_url.rstrip("/") + "/models"
    try:
        response = await http_client().get(
            url,
            headers={"authorization": f"Bearer {target.api_key}"},
            timeout=min(target.timeout, PROBE_TIMEOUT_SECONDS),
        )
    except UpstreamTransportError:
        return None
    return response.status


async def _cheapest_call(target: UpstreamTarget, model: str) -> bool | None:
    """A one-token completion: True when its answer says the credentials/quota are dead."""
    provider = get_provider(target.provider)
    short = UpstreamTarget(
        name=target.name,
        provider=target.provider,
        base_url=target.base_url,
        api_key=target.api_key,
        timeout=min(target.timeout, PROBE_TIMEOUT_SECONDS),
    )
    try:
        await provider.chat(
            client=http_client(),
            target=short,
            model=model,
            body={"model": model, **PROBE_BODY},
            headers={},
        )
    except UpstreamError as exc:
        if exc.disable:
            return True
        return None if exc.retryable else False
    except UnsupportedFeature:
        return None
    return False


async def _probe(target: UpstreamTarget, model: str, error: UpstreamError) -> bool | None:
    if target.provider in ("openai", "openai-compatible"):
        status = await _models_status(target)
        if status in (401, 403):
            return True
        if status is not None and 200 <= status < 300 and not _quota_hint(error):
            return False
    elif target.provider == "demo":
        return False
    return await _cheapest_call(target, model)


async def credentials_dead(*, target: UpstreamTarget, model: str, error: UpstreamError) -> bool:
    """True only when the gateway's own probe confirms the upstream's credentials or quota
    failed. False when the probe succeeded or could not tell (the caller cools the route
    down for the request's organization instead)."""
    now = time.monotonic()
    cached = _cache.get(target.name)
    if cached is not None and cached[0] > now:
        return bool(cached[1])
    lock = _locks.setdefault(target.name, asyncio.Lock())
    async with lock:
        cached = _cache.get(target.name)
        if cached is not None and cached[0] > time.monotonic():
            return bool(cached[1])
        try:
            verdict = await _probe(target, model, error)
        except Exception:  # noqa: BLE001 - an inconclusive probe never disables
            log.warning("credentials probe of upstream %s failed", target.name, exc_info=True)
            verdict = None
        _cache[target.name] = (time.monotonic() + PROBE_CACHE_SECONDS, verdict)
    log.warning(
        "upstream %s answered %s (%s); the gateway's probe says: %s",
        target.name,
        error.status,
        error.error_type or "-",
        {True: "credentials/quota failed", False: "credentials work", None: "inconclusive"}[
            verdict
        ],
    )
    return bool(verdict)


def probe_cache_clear() -> None:
    _cache.clear()
