"""Refusals that say what to do, and the record a refused request leaves behind.

A 402 names the limit the way the customer does (the key's or project's name, its period and
wallet), says how much is left, how much this request needed to hold and why (the output limit
times the price), and what to change. Internal ids never appear. Each refused route is also
noted in the request's `skipped` list, so its story shows why the request moved on.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.utils import timezone

from ledger.errors import BudgetExceeded, InsufficientBalance, LedgerError
from ledger.models import Account, AccountKind, Budget, BudgetCounter, UsageRecord, UsageStatus
from ledger.money import ZERO, money_format, wallet_name
from ledger.periods import period_end, period_start
from routing.pricing import price_per_token_max

PERIOD_WORDS = {"day": "daily", "week": "weekly", "month": "monthly", "total": "total"}
MILLION = Decimal(1_000_000)


def _tokens(n: int) -> str:
    return f"{n:,}"


def _tops(prices: Any) -> tuple[Decimal, Decimal]:
    """The input- and output-side prices per 1M tokens the hold was sized with (the dearest
    part of each side, as `routing.pricing.hold_amount` does)."""
    try:
        return price_per_token_max(prices)
    except (AttributeError, TypeError, ValueError):  # a hand-built Prices without derivations
        return prices.input, prices.output


def _why(
    *, currency: str, prices: Any, multiplier: Decimal, prompt_upper: int, completion_upper: int
) -> str:
    """How the hold was sized: the output limit times the output price (plus the input)."""
    if prices is None:
        return ""
    top_in, top_out = _tops(prices)
    parts = []
    if completion_upper:
        parts.append(
            f"up to {_tokens(completion_upper)} output tokens (max_tokens, or the model's "
            f"default when not set) × {money_format(top_out * multiplier, currency)} per 1M"
        )
    if prompt_upper:
        parts.append(
            f"up to {_tokens(prompt_upper)} input tokens × "
            f"{money_format(top_in * multiplier, currency)} per 1M"
        )
    if getattr(prices, "per_request", None):
        parts.append(f"{money_format(prices.per_request * multiplier, currency)} per request")
    return " + ".join(parts)


def _fitting_max_tokens(
    *, left: Decimal, prices: Any, multiplier: Decimal, prompt_upper: int
) -> int | None:
    """The largest max_tokens whose hold would fit in what is left (None: none would)."""
    if prices is None or multiplier <= 0:
        return None
    top_in, top_out = _tops(prices)
    if top_out <= 0:
        return None
    rest = (
        left
        - Decimal(prompt_upper) * top_in * multiplier / MILLION
        - (getattr(prices, "per_request", None) or 0) * multiplier
    )
    if rest <= 0:
        return None
    fits = int(rest * MILLION / (top_out * multiplier))
    return fits if fits >= 1 else None


def refusal_explain(
    *,
    exc: LedgerError,
    org_id: int,
    needed: Decimal,
    prices: Any,
    multiplier: Decimal,
    prompt_upper: int,
    completion_upper: int,
) -> str:
    """The sentence a customer reads on a 402 (and on the request's story)."""
    currency = getattr(exc, "currency", "")
    why = _why(
        currency=currency,
        prices=prices,
        multiplier=multiplier,
        prompt_upper=prompt_upper,
        completion_upper=completion_upper,
    )
    needed_text = f"this request needed to hold {money_format(needed, currency)}"
    if why:
        needed_text += f" ({why})"
    if isinstance(exc, BudgetExceeded):
        budget = (
            Budget.objects.select_related("project", "api_key").filter(pk=exc.budget_id).first()
        )
        if budget is None:
            return f"A {PERIOD_WORDS.get(exc.period, exc.period)} budget in {wallet_name(currency)} is used up; {needed_text}."
        now = timezone.now()
        start = period_start(budget.period, now)
        counter = BudgetCounter.objects.filter(budget=budget, period_start=start).first()
        used = (counter.spent + counter.reserved) if counter else ZERO
        left = max(budget.amount - used, ZERO)
        if budget.api_key_id:
            key = budget.api_key
            owner = (
                f'the key "{key.name}" ({key.prefix}…)' if key.name else f"the key {key.prefix}…"
            )
            raise_hint = "raise or remove the key's budget"
        else:
            owner = f'the project "{budget.project.name}"'
            raise_hint = "raise or remove the project's budget"
        if budget.period == "total":
            when = f"counted since {budget.created_at:%Y-%m-%d}"
        else:
            end = period_end(budget.period, start)
            when = f"resets {end:%Y-%m-%d} 00:00 UTC"
        fits = _fitting_max_tokens(
            left=left, prices=prices, multiplier=multiplier, prompt_upper=prompt_upper
        )
        lower = f"set max_tokens to {_tokens(fits)} or less" if fits else "lower max_tokens"
        return (
            f"The {PERIOD_WORDS.get(budget.period, budget.period)} {wallet_name(currency)} budget "
            f"of {owner} is {money_format(budget.amount, currency)} ({when}); "
            f"{money_format(left, currency)} is left and {needed_text}. "
            f"To continue: {lower}, {raise_hint} in the dashboard, or wait for it to reset."
            if budget.period != "total"
            else f"The total {wallet_name(currency)} budget of {owner} is "
            f"{money_format(budget.amount, currency)} ({when}); "
            f"{money_format(left, currency)} is left and {needed_text}. "
            f"To continue: {lower}, or {raise_hint} in the dashboard."
        )
    if isinstance(exc, InsufficientBalance):
        wallet = Account.objects.filter(
            org_id=org_id, currency=currency, kind=AccountKind.WALLET
        ).first()
        left = max(wallet.posted - wallet.held, ZERO) if wallet else ZERO
        fits = _fitting_max_tokens(
            left=left, prices=prices, multiplier=multiplier, prompt_upper=prompt_upper
        )
        lower = f"set max_tokens to {_tokens(fits)} or less" if fits else "lower max_tokens"
        return (
            f"Your {wallet_name(currency)} wallet has {money_format(left, currency)} available "
            f"and {needed_text}. To continue: top up the {wallet_name(currency)} wallet on the "
            f"Top up page, or {lower}."
        )
    return str(exc)


def skipped_entry(*, route: Any, reason: str, detail: str) -> dict:
    """One line of the request's story: a route passed over, and why."""
    return {
        "upstream": route.target.name,
        "model": route.upstream_model,
        "wallet": route.wallet,
        "reason": reason,
        "detail": detail[:500],
    }


def refused_record(
    *,
    org_id: int,
    request_id: str,
    project_id: int | None,
    api_key_id: int | None,
    kind: str,
    researcher_run_id: Any,
    endpoint: str,
    model: str,
    stream: bool,
    error: str,
    skipped: list[dict] | None = None,
    wallet: str = "",
) -> UsageRecord | None:
    """A refused request (402, 403, 429) leaves a `failed` record at cost 0: it shows in the
    ledger, the usage counts and has its own story. Once per request id."""
    if not request_id or UsageRecord.objects.filter(request_id=request_id).exists():
        return None
    return UsageRecord.objects.create(
        org_id=org_id,
        request_id=request_id,
        project_id=project_id,
        api_key_id=api_key_id,
        kind=kind,
        researcher_run_id=researcher_run_id,
        endpoint=endpoint,
        model=str(model or "")[:120],
        wallet=wallet,
        stream=stream,
        error=error[:2000],
        skipped=skipped or [],
        attempts=[],
        cost=ZERO,
        status=UsageStatus.FAILED,
    )
