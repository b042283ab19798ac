"""Reads of runs, scoped to the organization (and project, for an API key)."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from researcher.figures import chart_series
from researcher.models import ResearchRun, ResearchStep


def runs_for_org(*, org_id: int, project_id: int | None = None) -> QuerySet[ResearchRun]:
    qs = ResearchRun.objects.for_org(org_id).select_related("project", "started_by", "api_key")
    if project_id is not None:
        qs = qs.filter(project_id=project_id)
    return qs.order_by("-created_at", "-pk")


def run_get(*, org_id: int, run_id, project_id: int | None = None) -> ResearchRun | None:
    """The run, or None when it is not this organization's (or project's) or the id is bad."""
    try:
        run_id = uuid.UUID(str(run_id))
    except ValueError:
        return None
    return runs_for_org(org_id=org_id, project_id=project_id).filter(pk=run_id).first()


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def step_as_dict(step: ResearchStep) -> dict:
    return {
        "request_id": step.request_id,
        "name": step.name,
        "attempt": step.attempt,
        "model": step.model,
        "route": step.route,
        "wallet": step.wallet,
        "paid_by": step.paid_by,
        "cost": format(step.cost, "f"),
        "prompt_tokens": step.prompt_tokens,
        "completion_tokens": step.completion_tokens,
        "max_tokens": step.max_tokens,
        "latency_ms": step.latency_ms,
        "status": step.status,
        "error": step.error,
    }


def run_as_dict(run: ResearchRun, *, steps: bool = True, detail: bool = True) -> dict:
    data = {
        "id": str(run.pk),
        "object": "research.run",
        "status": run.status,
        "question": run.question,
        "tickers": run.tickers,
        "depth": run.depth,
        "model": run.model,
        "project": run.project.name if run.project_id else None,
        "started_by": run.started_by_label,
        "budget": {"currency": run.budget_currency, "amount": format(run.budget_amount, "f")},
        "spent": format(run.spent, "f"),
        "estimate": {
            "currency": run.budget_currency,
            "min": format(run.estimate_min, "f"),
            "max": format(run.estimate_max, "f"),
        },
        "error": run.error,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
    }
    if steps:
        data["steps"] = [step_as_dict(s) for s in run.steps.all().order_by("index", "attempt")]
    if detail:
        data["figures"] = run.figures
        data["report"] = run.report
    return data


def allowances_of(*, org_id: int) -> list:
    """The organization's researcher allowance accounts (what is left this month)."""
    from ledger.models import Account, AccountKind

    return list(
        Account.objects.for_org(org_id).filter(kind=AccountKind.ALLOWANCE).order_by("currency")
    )


def run_chart(run: ResearchRun) -> dict:
    """Per ticker: dates, closes and moving averages for the run page's chart."""
    return {ticker: chart_series(rows) for ticker, rows in (run.prices or {}).items()}
