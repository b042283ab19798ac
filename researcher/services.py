"""Starting and cancelling AI Researcher runs (the execution is in `researcher.execution`).

Every surface (the /v1/ API, the management API, the dashboard) calls `run_create` and
`run_cancel`; bad input raises `RunInputError` naming the field, a budget too small for the
first step `RunBudgetTooSmall` with the estimate. Nothing is reserved at creation: each
step's hold reserves against the run's own ledger budget (period total), created here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_record
from ledger.models import Budget, BudgetCounter, Hold, HoldStatus, Period
from ledger.money import Currency, to_money
from researcher.figures import PriceDataError, figures_compute, prices_parse
from researcher.models import ACTIVE_STATUSES, Depth, ResearchRun, RunStatus
from researcher.steps import DEPTHS, step_messages
from routing.auth import KeyContext, key_context_for
from routing.pricing import hold_amount, prompt_tokens_estimate
from routing.request_bounds import prompt_tokens_upper  # the bound the engine holds for
from routing.selectors import ModelEntry, RouteEntry, model_entry_get

TICKER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-=^]{0,14}$")
MAX_TICKERS = 10
MAX_QUESTION = 4000
PRICE_SOURCE_TIMEOUT = 10.0


class RunInputError(ValueError):
    """Bad input: 400 with an OpenAI-style error naming `param`."""

    status = 400

    def __init__(self, message: str, *, param: str, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


class PriceSourceError(RunInputError):
    """The configured price source could not be reached or answered nonsense."""

    status = 502

    def __init__(self, message: str) -> None:
        super().__init__(message, param="prices", code="price_source_unavailable")


@dataclass(frozen=True)
class Estimate:
    currency: str
    min: Decimal
    max: Decimal
    first_step_min: Decimal  # the smallest hold the first step can take

    def as_dict(self) -> dict:
        return {"currency": self.currency, "min": str(self.min), "max": str(self.max)}


class RunBudgetTooSmall(RunInputError):
    status = 402

    def __init__(self, estimate: Estimate, amount: Decimal) -> None:
        super().__init__(
            f"A budget of {amount} {estimate.currency} cannot fund even the first step "
            f"(at least {estimate.first_step_min} {estimate.currency}); this run is estimated "
            f"at {estimate.min} to {estimate.max} {estimate.currency}.",
            param="budget.amount",
            code="run_budget_too_small",
        )
        self.estimate = estimate


@dataclass(frozen=True)
class RunSpec:
    """Validated input of a run."""

    question: str
    tickers: list[str]
    depth: str
    model: ModelEntry
    currency: str
    amount: Decimal
    prices: dict[str, list[list]]
    figures: dict[str, dict]


# --- validation -------------------------------------------------------------------------------


def _question(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RunInputError("'question' must be a non-empty string.", param="question")
    if len(value) > MAX_QUESTION or "\x00" in value:
        raise RunInputError(
            f"'question' must be at most {MAX_QUESTION} characters of text.", param="question"
        )
    return value.strip()


def _tickers(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [t for t in re.split(r"[,\s]+", value) if t]
    if not isinstance(value, list) or not value:
        raise RunInputError("'tickers' must be a non-empty list of symbols.", param="tickers")
    tickers: list[str] = []
    for item in value:
        if not isinstance(item, str) or not TICKER.match(item.strip()):
            raise RunInputError(f"'tickers' has an invalid symbol: {item!r}.", param="tickers")
        symbol = item.strip().upper()
        if symbol not in tickers:
            tickers.append(symbol)
    if len(tickers) > MAX_TICKERS:
        raise RunInputError(f"'tickers' may name at most {MAX_TICKERS} symbols.", param="tickers")
    return tickers


def _depth(value: Any) -> str:
    if value is None or value == "":
        return Depth.STANDARD
    if value not in Depth.values:
        raise RunInputError(
            f"'depth' must be one of {', '.join(Depth.values)}; got {value!r}.", param="depth"
        )
    return value


def _budget(value: Any) -> tuple[str, Decimal]:
    if not isinstance(value, dict):
        raise RunInputError(
            "'budget' must be an object with 'currency' and 'amount'.", param="budget"
        )
    currency = value.get("currency")
    if currency not in Currency.values:
        raise RunInputError(
            f"'budget.currency' must be one of {', '.join(Currency.values)}; got {currency!r}.",
            param="budget.currency",
        )
    raw = value.get("amount")
    if isinstance(raw, bool) or not isinstance(raw, str | int | float | Decimal):
        raise RunInputError("'budget.amount' must be a decimal number.", param="budget.amount")
    try:
        amount = Decimal(str(raw).strip())
    except InvalidOperation:
        raise RunInputError(
            "'budget.amount' must be a decimal number.", param="budget.amount"
        ) from None
    if not amount.is_finite() or amount <= 0:
        raise RunInputError("'budget.amount' must be greater than zero.", param="budget.amount")
    if amount > Decimal("1000000") or amount != to_money(amount):
        raise RunInputError(
            "'budget.amount' must be at most 1000000 with at most 10 decimal places.",
            param="budget.amount",
        )
    return currency, to_money(amount)


def _prices(value: Any, tickers: list[str]) -> dict[str, list[list]]:
    """CSV text (for the first ticker, or the only one) or {ticker: CSV}; then the configured
    source for the tickers without one."""
    given: dict[str, str] = {}
    if value is None or value == "":
        pass
    elif isinstance(value, str):
        given[tickers[0]] = value
    elif isinstance(value, dict):
        for ticker, text in value.items():
            symbol = str(ticker).strip().upper()
            if symbol not in tickers:
                raise RunInputError(
                    f"'prices' names {ticker!r}, which is not in 'tickers'.", param="prices"
                )
            if not isinstance(text, str):
                raise RunInputError(f"'prices.{symbol}' must be CSV text.", param="prices")
            given[symbol] = text
    else:
        raise RunInputError("'prices' must be CSV text or an object of CSV texts.", param="prices")
    parsed: dict[str, list[list]] = {}
    for ticker in tickers:
        text = given.get(ticker)
        if text is None and settings.RESEARCHER_PRICE_SOURCE_URL:
            text = price_source_fetch(ticker=ticker)
        if text is None:
            continue
        try:
            parsed[ticker] = prices_parse(text, ticker=ticker)
        except PriceDataError as exc:
            raise RunInputError(f"'prices': {exc}.", param="prices", code="invalid_csv") from None
    return parsed


def price_source_fetch(*, ticker: str) -> str:
    """The CSV the operator's source answers for `ticker` (RESEARCHER_PRICE_SOURCE_URL)."""
    template = settings.RESEARCHER_PRICE_SOURCE_URL
    url = template.replace("{ticker}", ticker)
    host = httpx.URL(url).host or "the price source"
    try:
        response = httpx.get(url, timeout=PRICE_SOURCE_TIMEOUT, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise PriceSourceError(
            f"The price source ({host}) could not be reached for {ticker}: "
            f"{type(exc).__name__}. Paste the price history as CSV instead."
        ) from None
    if response.status_code != 200:
        raise PriceSourceError(
            f"The price source ({host}) answered HTTP {response.status_code} for {ticker}."
        )
    return response.text


def _model(value: Any, ctx: KeyContext) -> ModelEntry:
    name = value if value not in (None, "") else settings.RESEARCHER_DEFAULT_MODEL
    if not isinstance(name, str):
        raise RunInputError("'model' must be a model name.", param="model")
    entry = model_entry_get(name=name)
    if entry is None:
        raise RunInputError(
            f"The model '{name}' does not exist.", param="model", code="model_not_found"
        )
    if not ctx.model_allowed(name):
        raise RunInputError(
            f"The model '{name}' is not allowed for this API key.",
            param="model",
            code="model_not_allowed",
        )
    return entry


def run_routes(*, model: ModelEntry, ctx: KeyContext, currency: str) -> list[RouteEntry]:
    """The routes a step may take: the model's routes billing the run's currency (and a wallet
    the key may use), so the run budget applies to every hold."""
    if ctx.allowed_wallets and currency not in ctx.allowed_wallets:
        return []
    return [r for r in model.routes if r.wallet == currency]


def run_context(*, run: ResearchRun) -> KeyContext:
    """The engine's caller: the starting key (its models, limits, budgets) or the project,
    restricted to the run's currency."""
    ctx = key_context_for(org_id=run.org_id, project_id=run.project_id, api_key_id=run.api_key_id)
    return replace(ctx, allowed_wallets=(run.budget_currency,))


# --- estimate ---------------------------------------------------------------------------------


def step_max_tokens(
    *, routes: list[RouteEntry], multiplier: Decimal, prompt_upper: int, limit: int, left: Decimal
) -> int:
    """The largest output limit (at most `limit`) whose hold fits in `left` on every route."""

    def fits(tokens: int) -> bool:
        return all(
            hold_amount(
                prices=r.prices,
                multiplier=multiplier,
                prompt_upper=prompt_upper,
                completion_upper=tokens,
            )
            <= left
            for r in routes
        )

    if not fits(0):
        return 0
    low, high = 0, limit
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    return low


def run_estimate(
    *,
    question: str,
    tickers: list[str],
    figures: dict,
    depth: str,
    routes: list[RouteEntry],
    multiplier: Decimal,
    currency: str,
    model_limit: int | None = None,
) -> Estimate:
    """Min: every step at its smallest output on the cheapest route; max: every step at full
    output, each prompt carrying the previous outputs in full, on the dearest route."""
    plan = DEPTHS[depth]
    full = min(plan.max_tokens, model_limit) if model_limit else plan.max_tokens
    smallest = min(settings.RESEARCHER_MIN_STEP_TOKENS, full)
    low = high = first = Decimal(0)
    previous_min: list[tuple[str, str]] = []
    previous_max: list[tuple[str, str]] = []
    for index, name in enumerate(plan.steps):
        common = {"name": name, "question": question, "tickers": tickers, "figures": figures}
        body_min = {"messages": step_messages(**common, previous=previous_min)}
        body_max = {"messages": step_messages(**common, previous=previous_max)}
        costs_min = [
            hold_amount(
                prices=r.prices,
                multiplier=multiplier,
                prompt_upper=prompt_tokens_estimate(body_min),
                completion_upper=smallest,
            )
            for r in routes
        ]
        costs_max = [
            hold_amount(
                prices=r.prices,
                multiplier=multiplier,
                prompt_upper=prompt_tokens_upper(body_max),
                completion_upper=full,
            )
            for r in routes
        ]
        low += min(costs_min)
        high += max(costs_max)
        if index == 0:
            first = max(
                hold_amount(
                    prices=r.prices,
                    multiplier=multiplier,
                    prompt_upper=prompt_tokens_upper(body_min),
                    completion_upper=smallest,
                )
                for r in routes
            )
        previous_min.append((name, "x " * smallest))
        previous_max.append((name, "xx " * full))
    return Estimate(
        currency=currency, min=to_money(low), max=to_money(high), first_step_min=to_money(first)
    )


# --- create / cancel --------------------------------------------------------------------------


def run_validate(*, ctx: KeyContext, data: dict) -> tuple[RunSpec, Estimate]:
    """Check every field (in the order a client reads them) and estimate the run's cost."""
    if not isinstance(data, dict):
        raise RunInputError("The request body must be a JSON object.", param=None)
    question = _question(data.get("question"))
    tickers = _tickers(data.get("tickers"))
    depth = _depth(data.get("depth"))
    currency, amount = _budget(data.get("budget"))
    model = _model(data.get("model"), ctx)
    routes = run_routes(model=model, ctx=ctx, currency=currency)
    if not routes:
        raise RunInputError(
            f"The model '{model.name}' has no route billing the {currency} wallet"
            + (" that this key may use." if ctx.allowed_wallets else "."),
            param="budget.currency",
            code="no_route_for_currency",
        )
    prices = _prices(data.get("prices"), tickers)
    figures = {ticker: figures_compute(rows) for ticker, rows in prices.items()}
    estimate = run_estimate(
        question=question,
        tickers=tickers,
        figures=figures,
        depth=depth,
        routes=routes,
        multiplier=ctx.price_multiplier,
        currency=currency,
        model_limit=model.max_output_tokens,
    )
    if amount < estimate.first_step_min:
        raise RunBudgetTooSmall(estimate, amount)
    spec = RunSpec(
        question=question,
        tickers=tickers,
        depth=depth,
        model=model,
        currency=currency,
        amount=amount,
        prices=prices,
        figures=figures,
    )
    return spec, estimate


def run_create(
    *,
    org_id: int,
    project_id: int,
    data: dict,
    user: Any | None = None,
    api_key_id: int | None = None,
    enqueue: bool = True,
) -> tuple[ResearchRun, Estimate]:
    """Validate, estimate, create the run with its own budget, and queue it for a worker."""
    ctx = key_context_for(org_id=org_id, project_id=project_id, api_key_id=api_key_id)
    spec, estimate = run_validate(ctx=ctx, data=data)
    with transaction.atomic():
        run = ResearchRun.objects.create(
            org_id=org_id,
            project_id=project_id,
            started_by=user,
            api_key_id=api_key_id,
            question=spec.question,
            tickers=spec.tickers,
            prices=spec.prices,
            figures=spec.figures,
            depth=spec.depth,
            model=spec.model.name,
            budget_currency=spec.currency,
            budget_amount=spec.amount,
            estimate_min=estimate.min,
            estimate_max=estimate.max,
        )
        budget = Budget.objects.create(
            org_id=org_id,
            researcher_run_id=run.pk,
            currency=spec.currency,
            amount=spec.amount,
            period=Period.TOTAL,
            soft_threshold=Decimal("9"),  # a run's budget is a hard stop: no alert email
        )
        BudgetCounter.objects.create(budget=budget, period_start="1970-01-01")
        audit_record(
            org=run.org,
            actor=user,
            action="research_run.start",
            target=run,
            changes={
                "model": run.model,
                "depth": run.depth,
                "budget": f"{run.budget_amount.normalize():f} {run.budget_currency}",
                "api_key": api_key_id,
            },
        )
        if enqueue:
            transaction.on_commit(lambda: run_enqueue(run_id=run.pk))
    return run, estimate


def run_enqueue(*, run_id) -> None:
    from researcher.tasks import research_run_execute

    research_run_execute.delay(str(run_id))


def run_cancel(*, run: ResearchRun, actor: Any | None = None) -> ResearchRun:
    """Queued: cancelled at once. Running: flagged; the worker stops the current step (its
    hold is voided by the engine) within a second. Finished runs are left as they are."""
    now = timezone.now()
    stopped = ResearchRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
        status=RunStatus.CANCELLED,
        cancel_requested=True,
        finished_at=now,
        error="cancelled before it started",
    )
    stopped += ResearchRun.objects.filter(pk=run.pk, status__in=ACTIVE_STATUSES).update(
        cancel_requested=True
    )
    if stopped:
        audit_record(org=run.org, actor=actor, action="research_run.cancel", target=run)
    run.refresh_from_db()
    return run


def run_budget_counter(*, run: ResearchRun) -> BudgetCounter | None:
    return BudgetCounter.objects.filter(budget__researcher_run_id=run.pk).first()


def run_open_holds(*, run: ResearchRun) -> list[Hold]:
    counter = run_budget_counter(run=run)
    if counter is None:
        return []
    return list(Hold.objects.filter(run_counter_id=counter.pk, status=HoldStatus.PENDING))
