"""The gateway engine: route choice, holds, upstream calls, retry/fallback, settlement.

Callable in-process (views, and the AI Researcher from Celery with kind="researcher"):

    result = await completion_create(ctx=ctx, body=body, request_id=rid)         # not streamed
    handle = await completion_stream(ctx=ctx, body=body, request_id=rid)         # streamed
    async for event in handle.events(): ...                                      # settles itself
    result = await embeddings_create(ctx=ctx, body=body, request_id=rid)

`ctx` is a `routing.auth.KeyContext` (`key_context_for(...)` builds one without a request).
`surface` is "openai" (chat.completion dicts) or "anthropic" (Messages dicts); the body is
expected to be validated already (`routing.validation`). Failures raise `GatewayError`.

Money rules (docs/billing.md): a hold sized from an upper bound is placed before the
upstream is called; the real cost is captured from reported usage (or estimated from what
was delivered, marked estimated); a request that delivered nothing and failed is voided
with a FAILED usage record. Settlement always happens, shielded from cancellation.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, OperationalError
from django.utils import timezone

from accounts.redaction import redact_secrets
from ledger.errors import BudgetExceeded, InsufficientBalance, LedgerError
from ledger.money import to_money
from routing import (
    cooldown,
    deadline,
    observability,
    probe,
    ratelimit,
    refusals,
    usage_guard,
)
from routing.auth import KeyContext
from routing.db import db_call, pg_capture, pg_checkpoint, pg_fast_path, pg_fetchone, pg_place
from routing.errors import GatewayError
from routing.http import http_client
from routing.pricing import (
    hold_amount,
    prompt_tokens_estimate,
    tokens_estimate,
    usage_cost,
    usage_record_prices,
)
from routing.providers import get_provider
from routing.providers.base import StreamState, UnsupportedFeature, UpstreamError, Usage
from routing.request_bounds import (
    body_with_output_limit,
    completion_tokens_upper,
    output_limit,
    prompt_tokens_upper,
)
from routing.savings import baseline_cost
from routing.selectors import ModelEntry, RouteEntry, model_entry_cached, model_entry_get

log = logging.getLogger("routing.engine")

_BACKGROUND: set[asyncio.Task] = set()  # strong refs for fire-and-forget and shielded tasks


def _spawn(coro: Awaitable) -> asyncio.Task:
    task = asyncio.ensure_future(coro)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)
    return task


async def _shielded(coro: Awaitable) -> Any:
    """Run to completion even if the caller is cancelled (client disconnect)."""
    task = _spawn(coro)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        # The task carries on in the background; the caller still sees its cancellation.
        raise


# --- ledger calls ------------------------------------------------------------------------------
#
# On PostgreSQL each is one SQL statement run straight from the event loop (routing.db:
# pg_place and pg_capture batch the holds and captures that arrive together into one statement,
# pg_fetchone runs the rest; the statements live in ledger.services.holds next to the ORM path);
# elsewhere (SQLite for `make run`), and for the rare cases the statement hands back (a budget
# counter to create, a budget refusal to name), the public ORM functions in a worker thread.


def _hold_place(**kwargs):
    from ledger.services.holds import hold_place

    return hold_place(**kwargs)


def _hold_capture(**kwargs):
    from ledger.services.holds import hold_capture

    return hold_capture(**kwargs)


def _hold_void(**kwargs):
    from ledger.services.holds import hold_void

    return hold_void(**kwargs)


def _hold_capture_late(**kwargs):
    from ledger.services.safeguards import hold_capture_late

    return hold_capture_late(**kwargs)


def _shortfall_record(**kwargs):
    from ledger.services.safeguards import shortfall_record

    return shortfall_record(**kwargs)


def _usage_record_failed(**kwargs):
    from ledger.services.holds import usage_record_failed

    return usage_record_failed(**kwargs)


async def _ledger_place(
    *,
    hold_id,
    org_id,
    currency,
    amount,
    project_id,
    api_key_id,
    request_id,
    ttl,
    researcher_run_id=None,
) -> None:
    kwargs = {
        "researcher_run_id": researcher_run_id,  # a researcher step: its run's budget too
        "hold_id": hold_id,
        "org_id": org_id,
        "currency": currency,
        "amount": amount,
        "project_id": project_id,
        "api_key_id": api_key_id,
        "request_id": request_id,
    }
    if pg_fast_path():
        from ledger.services import holds

        sql, params = holds.place_statement(**kwargs, now=timezone.now(), ttl=ttl)
        try:
            outcome = holds.place_outcome(await pg_place(sql, params))
        except DatabaseError as exc:
            outcome = holds.place_refusal(exc)
            if outcome is None:
                raise
            if outcome == "budget":
                outcome = "orm"  # the ORM path names the budget that refused
        if outcome == "placed":
            return
        if outcome == "insufficient" and researcher_run_id is None:
            raise InsufficientBalance(currency)
    await db_call(_hold_place, **kwargs, ttl_seconds=ttl)


async def _pg_settle(run):
    """Run a capture/void statement (`run()`); both are idempotent (guarded on the hold being
    pending), so a connection lost mid-statement is simply retried once on a fresh connection."""
    from ledger.services import holds

    for attempt in range(2):
        try:
            return await run()
        except OperationalError:
            if attempt:
                raise
        except IntegrityError as exc:
            if attempt or not holds.capture_missing_system_account(exc):
                raise
            await db_call(holds.system_accounts_ensure)
    return None


async def _ledger_capture(*, hold_id, amount: Decimal, usage: dict | None) -> None:
    if pg_fast_path():
        from ledger.services import holds

        cost, now = to_money(amount), timezone.now()
        row = await _pg_settle(lambda: pg_capture(hold_id=hold_id, cost=cost, usage=usage, now=now))
        if row is None:  # not pending: the request outlived its hold (or a retry's twin won)
            await db_call(_hold_capture_late, hold_id=hold_id, amount=amount, usage=usage)
        elif row[11]:
            await db_call(holds.threshold_alerts_record, counter_ids=list(row[11]))
        return
    settlement = await db_call(_hold_capture, hold_id=hold_id, amount=amount, usage=usage)
    if not settlement.created:
        await db_call(_hold_capture_late, hold_id=hold_id, amount=amount, usage=usage)


async def _ledger_void(*, hold_id, usage: dict | None) -> None:
    if pg_fast_path():
        from ledger.services import holds

        sql, params = holds.void_statement(
            hold_id=hold_id, usage=usage, expired=False, now=timezone.now()
        )
        await _pg_settle(lambda: pg_fetchone(sql, params))
        return
    await db_call(_hold_void, hold_id=hold_id, usage=usage)


async def _ledger_keepalive(
    *, hold_id, ttl: int, cost: Decimal | None = None, usage: dict | None = None
) -> None:
    """Push the hold's expiry forward; with `cost`/`usage`, write ahead the charge of what a
    stream has delivered so far (ledger.services.safeguards). Not flushed: a hint, not money."""
    from ledger.services import safeguards

    try:
        if pg_fast_path():
            item = safeguards.checkpoint_batch_item(
                hold_id=hold_id, now=timezone.now(), ttl=ttl, cost=cost, usage=usage
            )
            await pg_checkpoint(item)
        else:
            await db_call(
                safeguards.hold_checkpoint, hold_id=hold_id, ttl_seconds=ttl, cost=cost, usage=usage
            )
    except Exception:  # noqa: BLE001 - a missed keepalive only shortens the hold's life
        log.warning("hold keepalive failed for %s", hold_id, exc_info=True)


class _Keeper:
    """Keeps a request's current hold alive on a timer for as long as the request is in
    flight (waiting for a non-streamed answer, or streaming), whether or not events arrive;
    for a stream each tick also writes ahead what was delivered (`checkpoint`)."""

    __slots__ = ("checkpoint", "handle", "held", "interval")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.held: HeldRoute | None = None
        self.checkpoint: Callable[[], tuple[Decimal, dict] | None] | None = None
        self.handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        if self.handle is None:
            self.handle = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def _tick(self) -> None:
        self.handle = None
        held = self.held
        if held is None:
            return
        payload = None
        if self.checkpoint is not None:
            try:
                payload = self.checkpoint()
            except Exception:  # noqa: BLE001 - the keepalive itself still goes out
                log.warning("stream checkpoint failed", exc_info=True)
        cost, usage = payload if payload is not None else (None, None)
        _spawn(_ledger_keepalive(hold_id=held.hold_id, ttl=held.ttl, cost=cost, usage=usage))
        self.start()

    def stop(self) -> None:
        self.held = None
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


def _hold_ttl(route: RouteEntry) -> int:
    """A hold outlives every try of its route even if a keepalive is missed: HOLD_TTL_SECONDS,
    extended to the route's timeout times its tries plus a minute when that is longer."""
    tries = 1 + max(0, settings.ROUTING_RETRIES)
    return max(settings.HOLD_TTL_SECONDS, int(route.target.timeout) * tries + 60)


def _keeper_interval(*, stream: bool) -> float:
    interval = max(0.5, settings.HOLD_TTL_SECONDS / 3)
    if stream:
        interval = min(interval, float(settings.ROUTING_STREAM_CHECKPOINT_SECONDS))
    return interval


def _upstream_disable(**kwargs):
    from routing.services import upstream_disable

    return upstream_disable(**kwargs)


def _native_headers(provider, surface: str, upstream_headers: dict[str, str] | None) -> dict:
    """Client headers of a surface (e.g. `anthropic-beta`) only mean something to an upstream
    that speaks that surface natively; translated paths never see them (issue 5)."""
    if upstream_headers and provider.native_surface == surface:
        return upstream_headers
    return {}


# --- plan ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Plan:
    ctx: KeyContext
    model: ModelEntry
    chain: list[RouteEntry]
    body: dict
    surface: str
    endpoint: str
    request_id: str
    kind: str
    researcher_run_id: Any
    stream: bool
    prompt_upper: int
    completion_upper: int
    prompt_estimate: int
    started: float = field(default_factory=time.monotonic)
    half_open: int | None = None  # the route this request probes (routing.cooldown)
    keeper: _Keeper | None = None
    # What a route could not take (a surface's own fields/tools), for the usage record.
    dropped: Callable[[RouteEntry], list[str]] | None = None
    skipped: list = field(default_factory=list)  # routes passed over, and why (the story)


@dataclass(slots=True)
class HeldRoute:
    hold_id: Any
    wallet: str
    route: RouteEntry
    amount: Decimal = Decimal(0)
    ttl: int = 0


@dataclass(slots=True)
class CompletionResult:
    request_id: str
    body: dict
    usage: Usage
    cost: Decimal
    wallet: str
    upstream: str
    upstream_model: str
    fallback: bool
    # The capture, when the caller asked to settle after sending the response: it is already
    # running (and runs to the end even if the client leaves); await it before finishing.
    settlement: asyncio.Task | None = None
    dropped: list[str] = field(default_factory=list)  # what the serving route left out

    @property
    def headers(self) -> dict[str, str]:
        return {
            "x-tokenforge-route": f"{self.upstream}/{self.upstream_model}",
            "x-tokenforge-wallet": self.wallet,
            "x-tokenforge-fallback": "true" if self.fallback else "false",
            "x-tokenforge-cost": format(self.cost, "f"),
            **_dropped_header(self.dropped),
        }


def _nul_free(names: list[str]) -> list[str]:
    """Client-chosen names (dropped fields) without NUL: PostgreSQL text and jsonb refuse it."""
    return [n.replace("\x00", "") if "\x00" in n else n for n in names]


def _dropped_header(dropped: list[str]) -> dict[str, str]:
    return {"x-tokenforge-dropped": ", ".join(dropped)} if dropped else {}


def _order_chain(ctx: KeyContext, routes: tuple[RouteEntry, ...]) -> list[RouteEntry]:
    """Position order (or the key's wallet preference first); weighted shuffle among equals."""
    usable = [r for r in routes if not ctx.allowed_wallets or r.wallet in ctx.allowed_wallets]
    groups: dict[tuple[int, int], list[RouteEntry]] = {}
    for route in usable:
        rank = ctx.allowed_wallets.index(route.wallet) if ctx.allowed_wallets else 0
        groups.setdefault((rank, route.position), []).append(route)
    chain: list[RouteEntry] = []
    for key in sorted(groups):
        group = groups[key]
        while group:
            if len(group) == 1:
                chain.append(group.pop())
                break
            pick = random.choices(range(len(group)), weights=[max(r.weight, 1) for r in group])[0]
            chain.append(group.pop(pick))
    return chain


async def _plan(
    *,
    ctx: KeyContext,
    body: dict,
    request_id: str,
    surface: str,
    endpoint: str,
    kind: str,
    researcher_run_id: Any,
    stream: bool,
) -> Plan:
    name = body.get("model")
    if not ctx.model_allowed(name):
        raise GatewayError(
            403,
            f"The model '{name}' is not allowed for this API key.",
            type="permission_error",
            code="model_not_allowed",
            param="model",
        )
    hit, entry = model_entry_cached(name=name)
    if not hit:
        entry = await db_call(model_entry_get, name=name)
    if entry is None:
        raise GatewayError(
            404,
            f"The model '{name}' does not exist.",
            code="model_not_found",
            param="model",
        )
    chain = _order_chain(ctx, entry.routes)
    if not chain:
        if entry.routes:
            raise GatewayError(
                403,
                f"No route for '{name}' bills a wallet this key may use.",
                type="permission_error",
                code="wallet_not_allowed",
                param="model",
            )
        raise GatewayError(
            503, f"The model '{name}' has no available route.", type="api_error", code="no_route"
        )
    ordered = chain
    chain, half_open = await cooldown.breaker_chain(chain, org_id=ctx.org_id, model=name)
    kept = {r.route_id for r in chain}
    skipped = [
        refusals.skipped_entry(route=r, reason="cooldown", detail="cooling down after failures")
        for r in ordered
        if r.route_id not in kept
    ]
    completion_upper = 0
    if endpoint != "embeddings":
        # One output limit: the one the hold pays for is the one the upstream is sent.
        limit = output_limit(
            body,
            model_max=entry.max_output_tokens,
            default=settings.ROUTING_DEFAULT_MAX_OUTPUT_TOKENS,
        )
        body = body_with_output_limit(body, limit=limit, surface=surface)
        completion_upper = completion_tokens_upper(body, limit=limit)
    prompt_estimate = prompt_tokens_estimate(body)
    if ctx.api_key_id is not None:
        decision = await ratelimit.admit(
            key_id=ctx.api_key_id,
            rpm_limit=ctx.rpm_limit,
            tpm_limit=ctx.tpm_limit,
            tokens=prompt_estimate,
            stream_limit=ctx.max_concurrent_streams if stream else None,  # same round trip
            request_id=request_id,
        )
        if not decision.allowed and decision.limit == "streams":
            raise GatewayError(
                429,
                f"This key already has {ctx.max_concurrent_streams} concurrent streams open "
                "(max_concurrent_streams); wait for one to finish.",
                type="rate_limit_error",
                code="too_many_streams",
                headers={"Retry-After": "1"},
            )
        if not decision.allowed:
            what = "requests" if decision.limit == "rpm" else "tokens"
            raise GatewayError(
                429,
                f"Rate limit reached for this key ({what} per minute). "
                f"Retry after {decision.retry_after}s.",
                type="rate_limit_error",
                code=f"rate_limit_{decision.limit}",
                headers={"Retry-After": str(decision.retry_after)},
            )
    return Plan(
        ctx=ctx,
        model=entry,
        chain=chain,
        body=body,
        surface=surface,
        endpoint=endpoint,
        request_id=request_id,
        kind=kind,
        researcher_run_id=researcher_run_id,
        stream=stream,
        prompt_upper=prompt_tokens_upper(body),
        completion_upper=completion_upper,
        prompt_estimate=prompt_estimate,
        half_open=half_open,
        skipped=skipped,
    )


# --- holds and usage records ----------------------------------------------------------------


def _usage_dict(
    plan: Plan,
    *,
    route: RouteEntry | None,
    attempts: list[dict],
    usage: Usage | None,
    error: str = "",
) -> dict:
    prices = route.prices if route is not None else None
    baseline, baseline_wallet = (None, "")
    if route is not None and usage is not None:
        baseline, baseline_wallet = baseline_cost(
            routes=plan.model.routes, usage=usage, multiplier=plan.ctx.price_multiplier
        )
    usage = usage or Usage()
    record = {
        "request_id": plan.request_id,
        "project_id": plan.ctx.project_id,
        "api_key_id": plan.ctx.api_key_id,
        "kind": plan.kind,
        "researcher_run_id": plan.researcher_run_id,
        "endpoint": plan.endpoint,
        "model": plan.model.name,
        "upstream": route.target.name if route else "",
        "upstream_model": route.upstream_model if route else "",
        "attempts": attempts,
        "fallback": len(attempts) > 1,
        "wallet": route.wallet if route else "",
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cached_tokens": usage.cached_tokens,
        "estimated": usage.estimated,
        "price_input": prices.input if prices else Decimal(0),
        "price_output": prices.output if prices else Decimal(0),
        "price_cached_input": prices.cached_or_input if prices else Decimal(0),
        "price_multiplier": plan.ctx.price_multiplier,
        "baseline_cost": baseline,
        "baseline_wallet": baseline_wallet,
        "error": redact_secrets(error)[:2000],
        "anomalies": usage.anomalies,
        "stream": plan.stream,
        "latency_ms": int((time.monotonic() - plan.started) * 1000),
        "cache_write_tokens": usage.cache_write_tokens,
        "cache_write_1h_tokens": usage.cache_write_1h_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "input_audio_tokens": usage.input_audio_tokens,
        "output_audio_tokens": usage.output_audio_tokens,
        "reported_cost": usage.reported_cost,
        "dropped": _nul_free(plan.dropped(route)) if plan.dropped and route is not None else [],
        "skipped": list(plan.skipped),
    }
    if "\x00" in record["error"]:
        record["error"] = record["error"].replace("\x00", "")
    if prices is not None:  # every price part used, at this request's size (tier)
        record.update(
            usage_record_prices(prices=prices, multiplier=plan.ctx.price_multiplier, usage=usage)
        )
    return record


async def _place(plan: Plan, route: RouteEntry) -> HeldRoute:
    amount = hold_amount(
        prices=route.prices,
        multiplier=plan.ctx.price_multiplier,
        prompt_upper=min(plan.prompt_upper, route.context_window or plan.prompt_upper),
        completion_upper=plan.completion_upper,
    )
    hold_id = uuid.uuid4()  # chosen here, so a cancelled caller still knows what to void
    ttl = _hold_ttl(route)
    task = _spawn(
        _ledger_place(
            hold_id=hold_id,
            org_id=plan.ctx.org_id,
            currency=route.wallet,
            amount=amount,
            project_id=plan.ctx.project_id,
            api_key_id=plan.ctx.api_key_id,
            request_id=plan.request_id,
            ttl=ttl,
            researcher_run_id=plan.researcher_run_id,
        )
    )
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        _spawn(_void_once_placed(task, hold_id))
        raise
    return HeldRoute(hold_id=hold_id, wallet=route.wallet, route=route, amount=amount, ttl=ttl)


async def _void_once_placed(task: asyncio.Task, hold_id) -> None:
    """The client left while its hold was being placed: release it as soon as it exists."""
    try:
        await task
    except BaseException:  # noqa: BLE001 - refused or failed: nothing was reserved
        return
    try:
        await _ledger_void(hold_id=hold_id, usage=None)
    except Exception:  # noqa: BLE001 - the expiry sweep releases it
        log.warning("void of an abandoned hold failed; it expires instead", exc_info=True)


async def _capture(
    plan: Plan,
    held: HeldRoute,
    attempts: list[dict],
    usage: Usage,
    error: str = "",
    *,
    count_tokens: bool = True,
):
    cost = usage_cost(prices=held.route.prices, multiplier=plan.ctx.price_multiplier, usage=usage)
    record = _usage_dict(plan, route=held.route, attempts=attempts, usage=usage, error=error)
    shortfall = cost > held.amount
    if shortfall:  # only an upstream's own miscount gets here: the hold bounds the request
        from ledger.services.safeguards import ANOMALY_SHORTFALL, anomaly

        record["anomalies"] = [*record.get("anomalies", ()), anomaly(ANOMALY_SHORTFALL)]
    await _ledger_capture(hold_id=held.hold_id, amount=cost, usage=record)
    if shortfall:
        await db_call(
            _shortfall_record,
            hold_id=held.hold_id,
            upstream=held.route.target.name,
            request_id=plan.request_id,
            cost=cost,
            held=held.amount,
        )
    if count_tokens:
        await _tokens_count(plan, usage)
    return cost


async def _tokens_count(plan: Plan, usage: Usage) -> None:
    if plan.ctx.api_key_id is not None and plan.ctx.tpm_limit:
        await ratelimit.tokens_add(
            key_id=plan.ctx.api_key_id,
            tpm_limit=plan.ctx.tpm_limit,
            tokens=usage.total_tokens - plan.prompt_estimate,
        )


async def _void(plan: Plan, held: HeldRoute, attempts: list[dict] | None, error: str = "") -> None:
    usage = None
    if attempts is not None:
        usage = _usage_dict(plan, route=held.route, attempts=attempts, usage=None, error=error)
    await _ledger_void(hold_id=held.hold_id, usage=usage)


def _usage_clamped(plan: Plan, held: HeldRoute, usage: Usage) -> Usage:
    return usage_guard.usage_clamp(
        usage=usage,
        prompt_upper=plan.prompt_upper,
        completion_upper=plan.completion_upper,
        request_id=plan.request_id,
        upstream=held.route.target.name,
    )


def _attempt(route: RouteEntry, status: str, error: str, started: float) -> dict:
    return {
        "upstream": route.target.name,
        "model": route.upstream_model,
        "status": status,
        "error": redact_secrets(error)[:300],
        "latency_ms": int((time.monotonic() - started) * 1000),
    }


async def _refusal_note(plan: Plan, route: RouteEntry, exc: LedgerError) -> None:
    """Explain a refused hold (what is left, what was needed and why, what to change) and
    note the route as skipped in the request's story."""
    prompt_upper = min(plan.prompt_upper, route.context_window or plan.prompt_upper)  # as _place
    try:
        exc.explanation = await db_call(
            refusals.refusal_explain,
            exc=exc,
            org_id=plan.ctx.org_id,
            needed=hold_amount(
                prices=route.prices,
                multiplier=plan.ctx.price_multiplier,
                prompt_upper=prompt_upper,
                completion_upper=plan.completion_upper,
            ),
            prices=route.prices,
            multiplier=plan.ctx.price_multiplier,
            prompt_upper=prompt_upper,
            completion_upper=plan.completion_upper,
        )
    except Exception:  # noqa: BLE001 - an explanation never breaks the refusal itself
        log.warning("refusal explanation failed", exc_info=True)
    reason = "budget" if isinstance(exc, BudgetExceeded) else "balance"
    detail = getattr(exc, "explanation", "") or str(exc)
    plan.skipped.append(refusals.skipped_entry(route=route, reason=reason, detail=detail))


async def _refused_record(
    ctx, body, request_id, kind, researcher_run_id, stream, exc: GatewayError, **extra
) -> None:
    """A refused request (402, 403, 429) is recorded as `failed` at cost 0, once."""
    if getattr(exc, "recorded", False) or exc.status not in (402, 403, 429):
        return
    exc.recorded = True
    model = body.get("model") if isinstance(body, dict) else ""
    try:
        await db_call(
            refusals.refused_record,
            org_id=ctx.org_id,
            request_id=request_id,
            project_id=ctx.project_id,
            api_key_id=ctx.api_key_id,
            kind=kind,
            researcher_run_id=researcher_run_id,
            model=model if isinstance(model, str) else "",
            stream=stream,
            error=exc.message,
            **{"endpoint": "chat.completions", **extra},
        )
    except Exception:  # noqa: BLE001 - the refusal is answered even if its record fails
        log.warning("recording a refused request failed", exc_info=True)


def _ledger_gateway_error(exc: LedgerError) -> GatewayError:
    explained = getattr(exc, "explanation", "")
    if isinstance(exc, BudgetExceeded):
        return GatewayError(
            402,
            explained
            or f"The {exc.scope}'s {exc.period} budget in {exc.currency} is used up: lower "
            "max_tokens or raise the budget.",
            type="billing_error",
            code="budget_exceeded",
        )
    currency = getattr(exc, "currency", "")
    return GatewayError(
        402,
        explained or f"Insufficient {currency} balance: top up the wallet to continue.",
        type="billing_error",
        code="insufficient_balance",
    )


_DISABLED_MESSAGE = (
    "the upstream rejected its credentials or quota; it is disabled until an operator re-enables it"
)


_TENANT_STATUSES = (400, 403, 404, 409, 413, 422)


def _upstream_gateway_error(exc: UpstreamError | None) -> GatewayError:
    if exc is None:
        return GatewayError(
            503,
            "No upstream could serve this request.",
            type="api_error",
            code="upstream_unavailable",
        )
    if exc.tenant and exc.status in _TENANT_STATUSES:
        status = exc.status  # a refusal of this request: the client sees the upstream's status
    elif exc.status == 504:
        status = 504
    elif exc.status in (429, 503) or exc.disable:
        status = 503
    else:
        status = 502
    return GatewayError(
        status,
        f"Every route failed; last error: {_client_error_text(exc)}",
        type=exc.error_type if exc.tenant and exc.error_type else "api_error",
        code="upstream_error",
    )


def _client_error_text(exc: UpstreamError) -> str:
    """What a client may read of an upstream's answer: its status, type and redacted text
    (UpstreamError redacts at construction); the credentials case only generically."""
    if exc.disable:
        return _DISABLED_MESSAGE
    head = f"upstream answered {exc.status}" if exc.status else "upstream failed"
    if exc.error_type:
        head += f" ({exc.error_type})"
    return f"{head}: {redact_secrets(exc.message)}"


# --- the route loop ---------------------------------------------------------------------------


def _observe(hook: Callable[..., None], **kwargs: Any) -> None:
    """Observability never breaks a request."""
    try:
        hook(**kwargs)
    except Exception:  # noqa: BLE001
        log.warning("observability hook %s failed", getattr(hook, "__name__", hook), exc_info=True)


async def _route_loop(plan: Plan, call: Callable[[RouteEntry], Awaitable[Any]]):
    """Try the chain: hold per wallet/price, retries with backoff, fallback, cooldown.
    Returns (result, held, attempts). On total failure voids and raises GatewayError; the
    failed request always gets its usage record (attempts listed), hold or not."""
    attempts: list[dict] = []
    held: HeldRoute | None = None
    ledger_error: LedgerError | None = None
    last_error: UpstreamError | None = None
    unsupported: UnsupportedFeature | None = None
    tries = 1 + max(0, settings.ROUTING_RETRIES)
    keeper = plan.keeper = _Keeper(_keeper_interval(stream=plan.stream))
    try:
        for route in plan.chain:
            if held is None or held.wallet != route.wallet or held.route.prices != route.prices:
                # Same wallet: release first so the new hold can use the money. Another
                # wallet: place first, so a refusal keeps the old hold to record the failure on.
                if held is not None and held.wallet == route.wallet:
                    await _void(plan, held, None)
                    held = None
                try:
                    placed = await _place(plan, route)
                except (InsufficientBalance, BudgetExceeded) as exc:
                    await _refusal_note(plan, route, exc)
                    ledger_error = ledger_error or exc
                    continue
                if held is not None:
                    await _void(plan, held, None)
                held = keeper.held = placed
                keeper.start()
            else:
                held.route = route
            for attempt in range(tries):
                started = time.monotonic()
                try:
                    result = await call(route)
                except UpstreamError as exc:
                    last_error = exc
                    # A credentials/quota answer may echo part of the upstream's key: operators
                    # see it (disabled_reason), customers only a generic reason.
                    shown = _DISABLED_MESSAGE if exc.disable else exc.message
                    attempts.append(_attempt(route, str(exc.status or "error"), shown, started))
                    attempts[-1]["type"] = exc.error_type  # the upstream's error type, if any
                    # The operator's copy: the whole (redacted) text, whatever the client saw.
                    log.warning(
                        "upstream %s answered %s (%s) on %s: %s",
                        route.target.name,
                        exc.status or "error",
                        exc.error_type or "-",
                        plan.request_id,
                        exc.message,
                    )
                    _observe(
                        observability.attempt_failed,
                        upstream=route.target.name,
                        model=route.upstream_model,
                        reason=str(exc.status or "error"),
                    )
                    if exc.disable:
                        if await probe.credentials_dead(
                            target=route.target, model=route.upstream_model, error=exc
                        ):
                            plan.skipped.append(
                                refusals.skipped_entry(route=route, reason="disabled", detail=shown)
                            )
                            reason = f"{exc.status or ''} {exc.error_type or ''} {exc.message}"
                            await db_call(
                                _upstream_disable,
                                upstream_id=route.upstream_id,
                                reason=redact_secrets(" ".join(reason.split()))[:500],
                            )
                            break
                        # The gateway's own probe got through: this answer was about this
                        # request, not the upstream's credentials.
                        exc.disable, exc.tenant = False, True
                        attempts[-1]["error"] = redact_secrets(exc.message)[:300]
                    if exc.tenant:
                        # Not confirmed by the gateway's own probe, or a refusal of this
                        # request: only this organization's breaker counts it.
                        await cooldown.failure_record(
                            route.route_id,
                            org_id=plan.ctx.org_id,
                            reopen=plan.half_open == route.route_id,
                        )
                        break
                    if not exc.retryable:
                        err = GatewayError(
                            exc.status or 400,
                            exc.message,
                            type=exc.error_type or "invalid_request_error",
                            code="upstream_rejected",
                        )
                        await _void(plan, held, attempts, error=exc.message)
                        held = None
                        raise err from exc
                    probing = plan.half_open == route.route_id
                    if await cooldown.failure_record(route.route_id, reopen=probing):
                        _observe(
                            observability.route_cooled_down,
                            upstream=route.target.name,
                            model=route.upstream_model,
                        )
                    if probing:
                        break  # a failed half-open probe re-opens the breaker: no retry
                    if attempt + 1 < tries:
                        delay = settings.ROUTING_RETRY_BACKOFF_SECONDS * (2**attempt)
                        if exc.retry_after:
                            delay = max(delay, min(exc.retry_after, 2.0))
                        await asyncio.sleep(delay)
                    continue
                except UnsupportedFeature as exc:
                    # This route's provider cannot do what was asked: the next one may.
                    unsupported = unsupported or exc
                    attempts.append(_attempt(route, "unsupported", exc.message, started))
                    plan.skipped.append(
                        refusals.skipped_entry(
                            route=route, reason="unsupported feature", detail=exc.message
                        )
                    )
                    break
                attempts.append(_attempt(route, "ok", "", started))
                if plan.half_open == route.route_id:
                    await cooldown.success_record(route.route_id, org_id=plan.ctx.org_id)
                return result, held, attempts
        error = "no upstream answered"
        if last_error is not None:
            error = _DISABLED_MESSAGE if last_error.disable else last_error.message
        elif unsupported is not None:
            error = unsupported.message
        elif ledger_error is not None:
            error = str(ledger_error) or type(ledger_error).__name__
        if held is not None:
            await _void(plan, held, attempts, error=error)
            held = None
        elif attempts:
            # The hold went with a released route and the next one's was refused: the
            # request still gets its record of what was tried.
            await db_call(
                _usage_record_failed,
                org_id=plan.ctx.org_id,
                usage=_usage_dict(plan, route=None, attempts=attempts, usage=None, error=error),
            )
        if unsupported is not None and last_error is None:
            raise GatewayError(
                400, unsupported.message, param=unsupported.param, code="unsupported"
            )
        if last_error is None and ledger_error is not None:
            refused = _ledger_gateway_error(ledger_error)
            if not attempts:
                # Refused before any upstream call: still a request with its own story.
                await _refused_record(
                    plan.ctx,
                    plan.body,
                    plan.request_id,
                    plan.kind,
                    plan.researcher_run_id,
                    plan.stream,
                    refused,
                    endpoint=plan.endpoint,
                    skipped=plan.skipped,
                )
            raise refused
        raise _upstream_gateway_error(last_error)
    except BaseException:
        keeper.stop()
        # Cancelled (client gone) or an unexpected error: never leave the hold pending.
        if held is not None:
            held_now = held
            await _shielded(_void(plan, held_now, attempts, error="request aborted"))
        raise


# --- non-streamed ---------------------------------------------------------------------------


async def _completion_create(
    *,
    ctx: KeyContext,
    body: dict,
    request_id: str,
    surface: str = "openai",
    kind: str = "api",
    researcher_run_id: Any = None,
    upstream_headers: dict[str, str] | None = None,
    settle_after_response: bool = False,
    endpoint: str | None = None,
    dropped: Callable[[RouteEntry], list[str]] | None = None,
) -> CompletionResult:
    plan = await _plan(
        ctx=ctx,
        body=body,
        request_id=request_id,
        surface=surface,
        endpoint=endpoint or ("chat.completions" if surface == "openai" else "messages"),
        kind=kind,
        researcher_run_id=researcher_run_id,
        stream=False,
    )
    plan.dropped = dropped
    client = http_client()

    async def call(route: RouteEntry):
        provider = get_provider(route.target.provider)
        method = provider.chat if surface == "openai" else provider.messages
        return await method(
            client=client,
            target=route.target,
            model=route.upstream_model,
            body=plan.body,
            headers=_native_headers(provider, surface, upstream_headers),
        )

    return await _finish_unary(plan, call, settle_after_response)


async def _embeddings_create(
    *,
    ctx: KeyContext,
    body: dict,
    request_id: str,
    kind: str = "api",
    researcher_run_id: Any = None,
    settle_after_response: bool = False,
) -> CompletionResult:
    plan = await _plan(
        ctx=ctx,
        body=body,
        request_id=request_id,
        surface="openai",
        endpoint="embeddings",
        kind=kind,
        researcher_run_id=researcher_run_id,
        stream=False,
    )
    client = http_client()

    async def call(route: RouteEntry):
        provider = get_provider(route.target.provider)
        return await provider.embeddings(
            client=client, target=route.target, model=route.upstream_model, body=plan.body
        )

    return await _finish_unary(plan, call, settle_after_response)


async def _finish_unary(plan: Plan, call, settle_after_response: bool = False) -> CompletionResult:
    """Route, call, then capture, durably, before the answer is handed back: an answer that
    leaves is already charged on disk, whatever crashes next (docs/billing.md). With
    `settle_after_response` only the bookkeeping that moves no money (the key's token rate
    counter) is left for after the response (routing.asgi awaits it)."""
    result, held, attempts = await deadline.first_byte(plan.started, _route_loop(plan, call))
    plan.keeper.stop()
    usage = _usage_clamped(plan, held, result.usage)
    capture = _spawn(_capture(plan, held, attempts, usage, count_tokens=not settle_after_response))
    cost = await asyncio.shield(capture)  # the capture completes even if we are cancelled
    settlement = _spawn(_tokens_count(plan, usage)) if settle_after_response else None
    body = result.body
    if isinstance(body, dict) and plan.surface == "openai" and "model" in body:
        body = {**body, "model": plan.model.name}
    return CompletionResult(
        request_id=plan.request_id,
        body=body,
        usage=usage,
        cost=cost,
        wallet=held.wallet,
        upstream=held.route.target.name,
        upstream_model=held.route.upstream_model,
        fallback=len(attempts) > 1,
        settlement=settlement,
        dropped=_nul_free(plan.dropped(held.route)) if plan.dropped else [],
    )


# --- streamed ---------------------------------------------------------------------------------


def _openai_text(event: dict) -> str:
    parts = []
    for choice in event.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict):
            if isinstance(delta.get("content"), str):
                parts.append(delta["content"])
            for call in delta.get("tool_calls") or ():
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict):
                    parts.append(str(fn.get("name") or "") + str(fn.get("arguments") or ""))
    return "".join(parts)


def _anthropic_text(event: dict) -> str:
    if event.get("type") == "content_block_delta":
        delta = event.get("delta") or {}
        return str(delta.get("text") or delta.get("partial_json") or delta.get("thinking") or "")
    return ""


def _meaningful(surface: str, event: dict) -> bool:
    """Has content reached the client with this event? Until then, fallback is still possible."""
    if surface == "openai":
        if event.get("usage") and not event.get("choices"):
            return True
        for choice in event.get("choices") or ():
            if isinstance(choice, dict) and (choice.get("finish_reason") or _openai_text(event)):
                return True
        return False
    return event.get("type") in ("content_block_delta", "message_delta", "message_stop")


class StreamHandle:
    """An open stream whose first content is already in hand (fallback is over).

    Iterate `events()` exactly once; it settles the hold when the stream ends, breaks, or the
    consumer goes away (cancellation or aclose), shielded so settlement always completes.
    """

    def __init__(self, plan, held, attempts, state, first, rest, client_wants_usage):
        self.plan: Plan = plan
        self.held: HeldRoute = held
        self.attempts: list[dict] = attempts
        self.state: StreamState = state
        self._first: list[dict] = first
        self._rest: AsyncIterator[dict] = rest
        self._client_wants_usage = client_wants_usage
        self._delivered: list[str] = []
        self._error: str = ""
        self._completed = False
        self._settled = False
        self._cost: Decimal | None = None

    @property
    def request_id(self) -> str:
        return self.plan.request_id

    @property
    def headers(self) -> dict[str, str]:
        return {
            "x-tokenforge-route": self.held.route.label,
            "x-tokenforge-wallet": self.held.wallet,
            "x-tokenforge-fallback": "true" if len(self.attempts) > 1 else "false",
            **_dropped_header(
                _nul_free(self.plan.dropped(self.held.route)) if self.plan.dropped else []
            ),
        }

    def _outgoing(self, event: dict) -> dict | None:
        if self.plan.surface != "openai":
            return event
        # Events are ours (parsed per request), so they are changed in place: no copies per chunk.
        if "model" in event:
            event["model"] = self.plan.model.name
        if "usage" in event and not self._client_wants_usage:
            if not event.get("choices"):
                return None
            del event["usage"]
        return event

    def _error_event(self, message: str) -> dict:
        if self.plan.surface == "openai":
            return {
                "error": {
                    "message": message,
                    "type": "api_error",
                    "code": "upstream_error",
                    "param": None,
                }
            }
        return {"type": "error", "error": {"type": "api_error", "message": message}}

    async def events(self) -> AsyncIterator[dict]:
        text_of = _openai_text if self.plan.surface == "openai" else _anthropic_text
        keeper = self.plan.keeper
        if keeper is not None:
            # From now on a crash is charged for what was delivered: written ahead at once,
            # then on the keeper's timer (ledger.services.safeguards).
            keeper.checkpoint = self._checkpoint
            _spawn(self._write_ahead())
        try:
            for event in self._first:
                out = self._outgoing(event)
                if out is not None:
                    yield out
                self._delivered.append(text_of(event))
            self._first = []
            try:
                async for event in self._rest:
                    out = self._outgoing(event)
                    if out is not None:
                        yield out
                    self._delivered.append(text_of(event))
                self._completed = True
            except UpstreamError as exc:
                self._error = f"stream broke: {exc.message}"
                self.attempts[-1] = {
                    **self.attempts[-1],
                    "status": "broken",
                    "error": exc.message[:300],
                }
                yield self._error_event(f"The upstream stream broke: {exc.message}")
        except (asyncio.CancelledError, GeneratorExit):
            self._error = self._error or "client disconnected"
            raise
        finally:
            if not self._settled:
                self._settled = True
                await _shielded(self._settle())

    def _checkpoint(self) -> tuple[Decimal, dict]:
        """The charge of what has reached the client so far, by the partial-stream policy."""
        plan = self.plan
        usage = Usage(
            prompt_tokens=plan.prompt_estimate,
            completion_tokens=tokens_estimate("".join(self._delivered)),
            estimated=True,
        )
        cost = usage_cost(
            prices=self.held.route.prices, multiplier=plan.ctx.price_multiplier, usage=usage
        )
        record = _usage_dict(
            plan,
            route=self.held.route,
            attempts=self.attempts,
            usage=usage,
            error="the gateway stopped mid-stream; charged for what was delivered",
        )
        return cost, record

    async def _write_ahead(self) -> None:
        cost, record = self._checkpoint()
        await _ledger_keepalive(
            hold_id=self.held.hold_id, ttl=self.held.ttl, cost=cost, usage=record
        )

    async def aclose(self) -> None:
        """Settle a handle whose events() were never iterated (e.g. the view failed)."""
        if not self._settled:
            self._settled = True
            self._error = self._error or "client disconnected"
            await _shielded(self._settle())

    async def _settle(self) -> None:
        if self.plan.keeper is not None:
            self.plan.keeper.stop()
        try:
            closer = getattr(self._rest, "aclose", None)
            if closer is not None:
                try:
                    await closer()  # stops the upstream call if still running
                except Exception:  # noqa: BLE001 - the upstream is gone either way
                    log.debug("upstream stream close failed", exc_info=True)
            plan, state = self.plan, self.state
            delivered = tokens_estimate("".join(self._delivered))
            if state.usage is not None and (self._completed or state.usage.total_tokens > 0):
                usage = _usage_clamped(plan, self.held, state.usage)
            elif delivered == 0 and not self._completed:
                await _void(
                    plan, self.held, self.attempts, error=self._error or "nothing delivered"
                )
                return
            else:
                usage = Usage(
                    prompt_tokens=plan.prompt_estimate, completion_tokens=delivered, estimated=True
                )
            self._cost = await _capture(plan, self.held, self.attempts, usage, error=self._error)
        except Exception:
            log.exception("stream settlement failed for %s", self.plan.request_id)
        finally:
            plan = self.plan
            error_code = ""
            if self._error:
                error_code = (
                    "stream_broken"
                    if self._error.startswith("stream broke")
                    else ("client_disconnected")
                )
            _request_ended(
                ctx=plan.ctx,
                body=plan.body,
                request_id=plan.request_id,
                kind=plan.kind,
                stream=True,
                started=plan.started,
                status=200,
                route=self.held.route.label,
                wallet=self.held.wallet,
                cost=self._cost,
                fallback=len(self.attempts) > 1,
                error_code=error_code,
            )
            if self.plan.ctx.api_key_id is not None:
                await ratelimit.stream_release(
                    key_id=self.plan.ctx.api_key_id,
                    limit=self.plan.ctx.max_concurrent_streams,
                    request_id=self.plan.request_id,
                )


async def _completion_stream(
    *,
    ctx: KeyContext,
    body: dict,
    request_id: str,
    surface: str = "openai",
    kind: str = "api",
    researcher_run_id: Any = None,
    upstream_headers: dict[str, str] | None = None,
    endpoint: str | None = None,
    dropped: Callable[[RouteEntry], list[str]] | None = None,
) -> StreamHandle:
    """Open a stream: route, hold, and read until the first content (fallback allowed until
    then). The caller must iterate `handle.events()` (or call `handle.aclose()`)."""
    plan = await _plan(
        ctx=ctx,
        body=body,
        request_id=request_id,
        surface=surface,
        endpoint=endpoint or ("chat.completions" if surface == "openai" else "messages"),
        kind=kind,
        researcher_run_id=researcher_run_id,
        stream=True,
    )
    plan.dropped = dropped  # its stream slot, if the key has a limit, was taken by _plan
    client = http_client()
    options = body.get("stream_options")
    client_wants_usage = isinstance(options, dict) and bool(options.get("include_usage"))

    async def call(route: RouteEntry):
        provider = get_provider(route.target.provider)
        state = StreamState()
        method = provider.chat_stream if surface == "openai" else provider.messages_stream
        events = method(
            client=client,
            target=route.target,
            model=route.upstream_model,
            body=plan.body,
            headers=_native_headers(provider, surface, upstream_headers),
            state=state,
        )
        iterator = events.__aiter__()
        first: list[dict] = []
        try:
            while True:
                try:
                    event = await iterator.__anext__()
                except StopAsyncIteration:
                    break
                first.append(event)
                if _meaningful(surface, event):
                    break
        except BaseException:
            closer = getattr(iterator, "aclose", None)
            if closer is not None:
                try:
                    await closer()
                except Exception:  # noqa: BLE001
                    log.debug("upstream stream close failed", exc_info=True)
            raise
        if not first:
            raise UpstreamError("upstream stream was empty", status=502, retryable=True)
        return state, first, iterator

    try:
        (state, first, rest), held, attempts = await deadline.first_byte(
            plan.started, _route_loop(plan, call)
        )
    except BaseException:
        if ctx.api_key_id is not None:
            await _shielded(
                ratelimit.stream_release(
                    key_id=ctx.api_key_id, limit=ctx.max_concurrent_streams, request_id=request_id
                )
            )
        raise
    return StreamHandle(plan, held, attempts, state, first, rest, client_wants_usage)


# --- the one place a request ends (observability) ------------------------------------------


def _request_ended(
    *,
    ctx: KeyContext,
    body: dict,
    request_id: str,
    kind: str,
    stream: bool,
    started: float,
    status: int,
    route: str = "",
    wallet: str = "",
    cost: Decimal | None = None,
    fallback: bool = False,
    error_code: str = "",
    ended: float | None = None,
) -> None:
    model = body.get("model") if isinstance(body, dict) else None
    ended = time.monotonic() if ended is None else ended
    _observe(
        observability.request_finished,
        request_id=request_id,
        org_id=ctx.org_id,
        key_prefix=ctx.prefix,
        model=model if isinstance(model, str) else "",
        route=route,
        wallet=wallet,
        status=status,
        cost=cost,
        latency_ms=(ended - started) * 1000,
        fallback=fallback,
        stream=stream,
        kind=kind,
        error_code=error_code,
    )


def _failure_of(exc: BaseException) -> tuple[int, str]:
    if isinstance(exc, GatewayError):
        return exc.status, exc.code or ""
    if isinstance(exc, asyncio.CancelledError):
        return 499, "client_disconnected"
    if isinstance(exc, DatabaseError):
        return 503, "database_unavailable"
    return 500, "internal_error"


async def _observed_unary(impl, *, ctx, body, request_id, kind, **kwargs) -> CompletionResult:
    started = time.monotonic()
    common = {"ctx": ctx, "body": body, "request_id": request_id, "kind": kind}
    try:
        result = await impl(**common, **kwargs)
    except BaseException as exc:
        if isinstance(exc, GatewayError):
            await _refused_record(
                ctx,
                body,
                request_id,
                kind,
                kwargs.get("researcher_run_id"),
                False,
                exc,
                endpoint="embeddings"
                if impl is _embeddings_create
                else ("messages" if kwargs.get("surface") == "anthropic" else "chat.completions"),
            )
        status, code = _failure_of(exc)
        _request_ended(**common, stream=False, started=started, status=status, error_code=code)
        raise
    report = functools.partial(
        _request_ended,
        **common,
        stream=False,
        started=started,
        status=200,
        route=f"{result.upstream}/{result.upstream_model}",
        wallet=result.wallet,
        cost=result.cost,
        fallback=result.fallback,
        ended=time.monotonic(),
    )
    if result.settlement is None:
        report()
    else:
        # Off the response's critical path: reported once the capture (which runs after the
        # response is sent) is done; the latency is still the request's own.
        result.settlement.add_done_callback(lambda _task: report())
    return result


async def completion_create(
    *,
    ctx: KeyContext,
    body: dict,
    request_id: str,
    surface: str = "openai",
    kind: str = "api",
    researcher_run_id: Any = None,
    upstream_headers: dict[str, str] | None = None,
    settle_after_response: bool = False,
    endpoint: str | None = None,
    dropped: Callable[[RouteEntry], list[str]] | None = None,
) -> CompletionResult:
    """One non-streamed chat completion (surface "openai") or message ("anthropic").
    `upstream_headers`: client headers the adapter may forward (e.g. `anthropic-beta`).
    `settle_after_response`: the caller awaits `result.settlement` after sending (views)."""
    return await _observed_unary(
        _completion_create,
        ctx=ctx,
        body=body,
        request_id=request_id,
        kind=kind,
        surface=surface,
        researcher_run_id=researcher_run_id,
        upstream_headers=upstream_headers,
        settle_after_response=settle_after_response,
        endpoint=endpoint,
        dropped=dropped,
    )


async def embeddings_create(
    *,
    ctx: KeyContext,
    body: dict,
    request_id: str,
    kind: str = "api",
    researcher_run_id: Any = None,
    settle_after_response: bool = False,
) -> CompletionResult:
    return await _observed_unary(
        _embeddings_create,
        ctx=ctx,
        body=body,
        request_id=request_id,
        kind=kind,
        researcher_run_id=researcher_run_id,
        settle_after_response=settle_after_response,
    )


async def completion_stream(
    *,
    ctx: KeyContext,
    body: dict,
    request_id: str,
    surface: str = "openai",
    kind: str = "api",
    researcher_run_id: Any = None,
    upstream_headers: dict[str, str] | None = None,
    endpoint: str | None = None,
    dropped: Callable[[RouteEntry], list[str]] | None = None,
) -> StreamHandle:
    """Open a stream: route, hold, and read until the first content (fallback allowed until
    then). The caller must iterate `handle.events()` (or call `handle.aclose()`); the stream's
    end is reported when it settles."""
    started = time.monotonic()
    try:
        return await _completion_stream(
            ctx=ctx,
            body=body,
            request_id=request_id,
            surface=surface,
            kind=kind,
            researcher_run_id=researcher_run_id,
            upstream_headers=upstream_headers,
            endpoint=endpoint,
            dropped=dropped,
        )
    except BaseException as exc:
        if isinstance(exc, GatewayError):
            await _refused_record(
                ctx,
                body,
                request_id,
                kind,
                researcher_run_id,
                True,
                exc,
                endpoint="chat.completions" if surface == "openai" else "messages",
            )
        status, code = _failure_of(exc)
        _request_ended(
            ctx=ctx,
            body=body,
            request_id=request_id,
            kind=kind,
            stream=True,
            started=started,
            status=status,
            error_code=code,
        )
        raise
