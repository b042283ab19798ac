"""Executing a run: its steps, one engine request each, on a Celery worker.

Crash safety: a worker claims a run with a lease (a conditional UPDATE) and renews it while it
works; a step row (with its request id) is written before its request is made. A worker that
takes over a run whose lease lapsed first settles what the dead one left: a step whose hold is
still pending is voided now (not at the hold's TTL), a step whose request was captured keeps
its charge (never charged again) and is re-run as a new attempt only if its output was lost.
Cancellation is a flag the worker polls while a step runs: it cancels the engine call, which
voids the step's hold.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import timedelta
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.db.models import F, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from ledger.models import Hold, HoldStatus, UsageRecord, UsageStatus
from ledger.money import ZERO, to_money
from ledger.services.allowance import allowance_refresh
from ledger.services.holds import hold_void
from researcher.figures import figures_markdown
from researcher.models import ACTIVE_STATUSES, ResearchRun, ResearchStep, RunStatus, StepStatus
from researcher.services import run_budget_counter, run_context, run_routes, step_max_tokens
from researcher.steps import DEPTHS, step_messages
from routing import engine
from routing.db import db_call, pg_pool_close
from routing.errors import GatewayError
from routing.http import http_client_aclose
from routing.request_bounds import prompt_tokens_upper  # the bound the engine holds for
from routing.selectors import model_entry_get

log = logging.getLogger("researcher.execution")

POLL_SECONDS = 0.5
MAX_EXECUTIONS = 3  # a run taken over more often than this ends failed
STEP_TRIES = 2
QUEUED_TOO_LONG_SECONDS = (
    300  # a step that failed after the engine's own retries and fallback is tried again
)


class _Stop(Exception):
    def __init__(self, status: str, error: str = "") -> None:
        super().__init__(error)
        self.status, self.error = status, error


# --- claim and finish (sync, ORM) --------------------------------------------------------------


def run_claim(*, run_id) -> bool:
    """Take the run if it is queued, or running with a lapsed lease (its worker died)."""
    now = timezone.now()
    return (
        ResearchRun.objects.filter(pk=run_id, status__in=ACTIVE_STATUSES)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(
            status=RunStatus.RUNNING,
            lease_until=now + timedelta(seconds=settings.RESEARCHER_LEASE_SECONDS),
            executions=F("executions") + 1,
            started_at=Coalesce(F("started_at"), now),
        )
        == 1
    )


def _lease_renew(*, run_id) -> bool:
    """Renew the lease; False when the run was cancelled (the flag) or is no longer running."""
    now = timezone.now()
    ResearchRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
        lease_until=now + timedelta(seconds=settings.RESEARCHER_LEASE_SECONDS)
    )
    row = ResearchRun.objects.filter(pk=run_id).values("status", "cancel_requested").first()
    return bool(row) and row["status"] == RunStatus.RUNNING and not row["cancel_requested"]


def _holds_release(*, run: ResearchRun) -> int:
    """Void every pending hold of the run's steps (a dead worker's, or a cancelled step's)."""
    counter = run_budget_counter(run=run)
    if counter is None:
        return 0
    released = 0
    for hold in Hold.objects.filter(run_counter_id=counter.pk, status=HoldStatus.PENDING):
        step = ResearchStep.objects.filter(request_id=hold.request_id).first()
        usage = None
        if step is not None and not UsageRecord.objects.filter(request_id=step.request_id).exists():
            usage = _failed_usage(run=run, step=step, error="the run's worker stopped")
        if hold_void(hold_id=hold.pk, usage=usage).created:
            released += 1
    return released


def _failed_usage(*, run: ResearchRun, step: ResearchStep, error: str) -> dict:
    return {
        "request_id": step.request_id,
        "project_id": run.project_id,
        "api_key_id": run.api_key_id,
        "kind": "researcher",
        "researcher_run_id": run.pk,
        "model": run.model,
        "wallet": run.budget_currency,
        "error": error,
    }


def _steps_settle_lost(*, run: ResearchRun) -> None:
    """Steps a dead worker left `running`: release their holds, keep what was charged."""
    _holds_release(run=run)
    for step in ResearchStep.objects.filter(run=run, status=StepStatus.RUNNING):
        record = UsageRecord.objects.filter(request_id=step.request_id).first()
        if record is not None and record.status == UsageStatus.SETTLED:
            _step_from_record(step=step, record=record)
            step.status = StepStatus.LOST
            step.error = "charged, but its output was lost when the worker stopped; re-run"
        else:
            step.status = StepStatus.FAILED
            step.error = "the worker stopped during this step; nothing was charged"
        step.finished_at = timezone.now()
        step.save()
    _spent_refresh(run=run)


def _step_from_record(*, step: ResearchStep, record: UsageRecord) -> None:
    step.cost = record.cost
    step.prompt_tokens = record.prompt_tokens
    step.completion_tokens = record.completion_tokens
    step.latency_ms = record.latency_ms
    step.wallet = record.wallet
    if record.upstream:
        step.route = f"{record.upstream}/{record.upstream_model}"


def _spent_refresh(*, run: ResearchRun) -> Decimal:
    spent = ResearchStep.objects.filter(run=run).aggregate(s=Sum("cost", default=ZERO))["s"]
    ResearchRun.objects.filter(pk=run.pk).update(spent=to_money(spent))
    return spent


def _finish(*, run: ResearchRun, status: str, error: str = "", report: str = "") -> None:
    _holds_release(run=run)
    _spent_refresh(run=run)
    run.refresh_from_db()
    if not report:
        report = run_report(run=run, status=status, error=error)
    ResearchRun.objects.filter(pk=run.pk, status__in=ACTIVE_STATUSES).update(
        status=status,
        error=error[:2000],
        report=report,
        finished_at=timezone.now(),
        lease_until=None,
    )


# --- the report --------------------------------------------------------------------------------


def run_report(*, run: ResearchRun, status: str, error: str = "") -> str:
    """The model's report (or what was done, when the run stopped early) and the figures
    table computed by code."""
    plan = DEPTHS[run.depth]
    done = {
        s.name: s.output
        for s in ResearchStep.objects.filter(run=run, status=StepStatus.SUCCEEDED).order_by(
            "index", "attempt"
        )
    }
    spent = ResearchStep.objects.filter(run=run).aggregate(s=Sum("cost", default=ZERO))["s"]
    money = f"{to_money(spent).normalize():f} of {run.budget_amount.normalize():f} {run.budget_currency}"
    parts: list[str] = []
    if status == RunStatus.SUCCEEDED and done.get("report"):
        parts.append(done["report"].strip())
    else:
        parts.append(f"# Research: {run.question[:120]}")
        missing = [name for name in plan.steps if name not in done]
        if status == RunStatus.STOPPED_BUDGET:
            parts.append(
                f"> **Stopped at the run budget.** The run spent {money}; the next step could "
                "not be funded even at its smallest size. Steps not run: "
                f"{', '.join(missing) or 'none'}. What was done is kept below."
            )
        elif status == RunStatus.CANCELLED:
            parts.append(f"> **Cancelled.** The run spent {money}. What was done is kept below.")
        else:
            parts.append(f"> **The run failed:** {error or 'unknown error'}. It spent {money}.")
        for name in plan.steps:
            if name in done:
                parts.append(f"## {name.capitalize()}\n\n{done[name].strip()}")
    parts.append("## Figures (computed by code from the price history)\n\n" + _figures(run))
    parts.append(
        f"---\n_AI Researcher run {run.pk}: {run.depth} depth, model {run.model}, spent {money}. "
        "Research, not investment advice._"
    )
    return "\n\n".join(parts) + "\n"


def _figures(run: ResearchRun) -> str:
    return figures_markdown(run.figures or {})


# --- the step loop (async) ---------------------------------------------------------------------


def _load(*, run_id) -> ResearchRun:
    return ResearchRun.objects.get(pk=run_id)


def _step_start(*, run: ResearchRun, index: int, name: str, max_tokens: int) -> ResearchStep:
    attempt = ResearchStep.objects.filter(run=run, index=index).count() + 1
    return ResearchStep.objects.create(
        run=run,
        index=index,
        attempt=attempt,
        name=name,
        request_id=f"rsr_{run.pk.hex[:16]}_{index}_{attempt}_{uuid.uuid4().hex[:8]}",
        model=run.model,
        max_tokens=max_tokens,
        wallet=run.budget_currency,
    )


def _step_save(*, step: ResearchStep, **values) -> None:
    record = UsageRecord.objects.filter(request_id=step.request_id).first()
    if record is not None:
        _step_from_record(step=step, record=record)
        hold = Hold.objects.select_related("wallet").filter(pk=record.hold_id).first()
        step.paid_by = hold.wallet.kind if hold is not None else ""
    for name, value in values.items():
        setattr(step, name, value)
    step.finished_at = timezone.now()
    step.save()
    _spent_refresh(run=step.run)


def _run_left(*, run: ResearchRun) -> Decimal:
    counter = run_budget_counter(run=run)
    if counter is None:
        return ZERO
    return run.budget_amount - counter.spent - counter.reserved


async def _call_step(*, run_id, ctx, body: dict, request_id: str, deadline: float):
    """The engine call, stopped when the run is cancelled or the step's time is up."""
    task = asyncio.ensure_future(
        engine.completion_create(
            ctx=ctx, body=body, request_id=request_id, kind="researcher", researcher_run_id=run_id
        )
    )
    last_renew = 0.0
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=POLL_SECONDS)
            if done:
                return task.result()
            now = time.monotonic()
            if now - last_renew >= POLL_SECONDS:
                last_renew = now
                if not await db_call(_lease_renew, run_id=run_id):
                    raise _Stop(RunStatus.CANCELLED, "cancelled")
            if now > deadline:
                raise _Stop(RunStatus.FAILED, "the step ran past its time limit")
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await _engine_background_drain()


async def _engine_background_drain() -> None:
    """Let the engine's shielded settlements (a cancelled step's void) finish before the
    worker's event loop closes."""
    pending = [t for t in list(engine._BACKGROUND) if not t.done()]
    if pending:
        await asyncio.wait(pending, timeout=30)


async def _execute(run_id) -> str:
    run = await db_call(_load, run_id=run_id)
    if run.executions > MAX_EXECUTIONS:
        raise _Stop(RunStatus.FAILED, f"the run's worker stopped {run.executions - 1} times")
    await db_call(_steps_settle_lost, run=run)
    await db_call(allowance_refresh, org_id=run.org_id, currency=run.budget_currency)
    ctx = await db_call(run_context, run=run)
    model = await db_call(model_entry_get, name=run.model)
    if model is None:
        raise _Stop(RunStatus.FAILED, f"the model '{run.model}' no longer exists")
    routes = run_routes(model=model, ctx=ctx, currency=run.budget_currency)
    if not routes:
        raise _Stop(RunStatus.FAILED, f"no route of '{run.model}' bills {run.budget_currency}")
    plan = DEPTHS[run.depth]
    limit = min(plan.max_tokens, model.max_output_tokens or plan.max_tokens)
    started = run.started_at or timezone.now()
    run_deadline = started + timedelta(seconds=settings.RESEARCHER_RUN_TIMEOUT_SECONDS)
    outputs: list[tuple[str, str]] = []
    done_steps = await db_call(
        lambda: {
            s.index: s.output
            for s in ResearchStep.objects.filter(run=run, status=StepStatus.SUCCEEDED)
        }
    )
    for index, name in enumerate(plan.steps):
        if index in done_steps:
            outputs.append((name, done_steps[index]))
            continue
        failures = 0
        while True:
            if not await db_call(_lease_renew, run_id=run.pk):
                raise _Stop(RunStatus.CANCELLED, "cancelled")
            if timezone.now() > run_deadline:
                raise _Stop(RunStatus.FAILED, "the run ran past its time limit")
            body = {
                "model": run.model,
                "messages": step_messages(
                    name=name,
                    question=run.question,
                    tickers=run.tickers,
                    figures=run.figures,
                    previous=outputs,
                ),
            }
            left = await db_call(_run_left, run=run)
            max_tokens = step_max_tokens(
                routes=routes,
                multiplier=ctx.price_multiplier,
                prompt_upper=prompt_tokens_upper(body),
                limit=limit,
                left=left,
            )
            if max_tokens < min(settings.RESEARCHER_MIN_STEP_TOKENS, limit):
                raise _Stop(RunStatus.STOPPED_BUDGET)
            body["max_tokens"] = max_tokens
            step = await db_call(
                _step_start, run=run, index=index, name=name, max_tokens=max_tokens
            )
            step.run = run
            step_started = time.monotonic()
            try:
                result = await _call_step(
                    run_id=run.pk,
                    ctx=ctx,
                    body=body,
                    request_id=step.request_id,
                    deadline=step_started + settings.RESEARCHER_STEP_TIMEOUT_SECONDS,
                )
            except _Stop as stop:
                status = StepStatus.CANCELLED if stop.status == RunStatus.CANCELLED else "failed"
                await db_call(_step_save, step=step, status=status, error=stop.error)
                raise
            except GatewayError as exc:
                await db_call(_step_save, step=step, status=StepStatus.FAILED, error=exc.message)
                if exc.code == "budget_exceeded" and "run total budget" in exc.message:
                    raise _Stop(RunStatus.STOPPED_BUDGET) from None
                if exc.status in (400, 401, 402, 403, 404) or failures + 1 >= STEP_TRIES:
                    raise _Stop(
                        RunStatus.FAILED, f"the {name} step failed: {exc.message}"
                    ) from None
                failures += 1
                continue
            text = _content(result.body)
            await db_call(
                _step_save,
                step=step,
                status=StepStatus.SUCCEEDED,
                output=text,
                latency_ms=int((time.monotonic() - step_started) * 1000),
            )
            outputs.append((name, text))
            break
    return RunStatus.SUCCEEDED


def _content(body) -> str:
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return ""
    return content if isinstance(content, str) else ""


async def _execute_guarded(run_id) -> tuple[str, str]:
    try:
        return await _execute(run_id), ""
    except _Stop as stop:
        return stop.status, stop.error
    finally:
        await _engine_background_drain()
        await http_client_aclose()
        await pg_pool_close()
        await sync_to_async(connections.close_all, thread_sensitive=False)()


def run_execute(*, run_id) -> str:
    """Run (or resume) a run to its end; returns its final status, or "skipped" when another
    worker holds it or it is already over. Called by the Celery task."""
    if not run_claim(run_id=run_id):
        return "skipped"
    try:
        status, error = asyncio.run(_execute_guarded(run_id))
    except Exception as exc:  # noqa: BLE001 - the run ends failed, never stays running
        log.exception("research run %s failed unexpectedly", run_id)
        status, error = RunStatus.FAILED, f"internal error ({type(exc).__name__})"
    run = ResearchRun.objects.get(pk=run_id)
    _finish(run=run, status=status, error=error)
    return status


def runs_recover(*, now=None) -> dict:
    """The beat sweep: runs whose worker died (lease lapsed) are queued again, or end failed
    after too many takeovers; cancelled ones end cancelled with their holds released."""
    now = now or timezone.now()
    stale = ResearchRun.objects.filter(status=RunStatus.RUNNING, lease_until__lt=now)
    counts = {"requeued": 0, "failed": 0, "cancelled": 0}
    from researcher.services import run_enqueue

    # Queued too long (its message was lost, e.g. a broker restart): queue it again; a
    # duplicate message is harmless, the lease lets one worker take the run.
    waiting = ResearchRun.objects.filter(
        status=RunStatus.QUEUED, created_at__lt=now - timedelta(seconds=QUEUED_TOO_LONG_SECONDS)
    ).values_list("pk", flat=True)
    for run_id in waiting[:100]:
        run_enqueue(run_id=run_id)
        counts["requeued"] += 1

    for run in stale:
        if run.cancel_requested:
            _finish(run=run, status=RunStatus.CANCELLED, error="cancelled")
            counts["cancelled"] += 1
        elif run.executions >= MAX_EXECUTIONS:
            _finish(
                run=run,
                status=RunStatus.FAILED,
                error=f"the run's worker stopped {run.executions} times",
            )
            counts["failed"] += 1
        else:
            _holds_release(run=run)
            run_enqueue(run_id=run.pk)
            counts["requeued"] += 1
    return counts
