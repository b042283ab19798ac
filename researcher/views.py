"""Dashboard pages of the AI Researcher: start a run (with a live estimate), the runs list,
a run's page (updated while it runs), its report as Markdown, cancel."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.decorators import org_required
from accounts.models import Role
from projects.selectors import projects_list
from researcher import selectors
from researcher.forms import FIELD_OF_PARAM, RunForm
from researcher.markdown import markdown_render
from researcher.services import RunBudgetTooSmall, RunInputError, run_cancel, run_create
from routing.models import Model

PAGE = 50


def _form(request, data=None) -> RunForm:
    models = Model.objects.filter(enabled=True).order_by("name").values_list("name", flat=True)
    return RunForm(
        data,
        projects=projects_list(org=request.org),
        models=models,
        default_model=settings.RESEARCHER_DEFAULT_MODEL,
    )


def _can_run(request) -> bool:
    return request.membership.has_role(Role.MEMBER)


def _budget_pct(run) -> int:
    if not run.budget_amount:
        return 0
    return min(100, int(run.spent / run.budget_amount * 100))


@org_required
def runs(request):
    form = _form(request)
    if request.method == "POST":
        if not _can_run(request):
            messages.error(request, "Starting a run needs the member role or higher.")
            return redirect("researcher:runs")
        form = _form(request, request.POST)
        if form.is_valid():
            try:
                run, _ = run_create(
                    org_id=request.org.pk,
                    project_id=int(form.cleaned_data["project"]),
                    data=form.run_data(),
                    user=request.user,
                )
            except RunInputError as exc:
                form.add_error(FIELD_OF_PARAM.get(exc.param or "", None), exc.message)
            else:
                return redirect("researcher:run", run_id=run.pk)
    rows = list(selectors.runs_for_org(org_id=request.org.pk)[:PAGE])
    for run in rows:
        run.budget_pct = _budget_pct(run)
    return render(
        request,
        "researcher/runs.html",
        {
            "title": "Researcher",
            "form": form,
            "runs": rows,
            "can_run": _can_run(request),
            "allowances": selectors.allowances_of(org_id=request.org.pk),
        },
    )


@org_required(Role.MEMBER)
@require_POST
def estimate(request):
    """The live estimate of the start form (JSON): the same checks as starting the run."""
    from researcher.services import run_validate
    from routing.auth import key_context_for

    form = _form(request, request.POST)
    if not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        return JsonResponse({"ok": False, "field": field, "error": errors[0]})
    ctx = key_context_for(org_id=request.org.pk, project_id=int(form.cleaned_data["project"]))
    try:
        _, est = run_validate(ctx=ctx, data=form.run_data())
    except RunBudgetTooSmall as exc:
        return JsonResponse(
            {
                "ok": False,
                "field": "budget_amount",
                "error": exc.message,
                "estimate": exc.estimate.as_dict(),
            }
        )
    except RunInputError as exc:
        return JsonResponse(
            {"ok": False, "field": FIELD_OF_PARAM.get(exc.param or "", ""), "error": exc.message}
        )
    return JsonResponse({"ok": True, "estimate": est.as_dict()})


def _run_or_404(request, run_id):
    run = selectors.run_get(org_id=request.org.pk, run_id=run_id)
    if run is None:
        raise Http404("No such run.")
    return run


@org_required
def run_detail(request, run_id):
    run = _run_or_404(request, run_id)
    data = selectors.run_as_dict(run)
    return render(
        request,
        "researcher/run.html",
        {
            "title": f"Research run {str(run.pk)[:8]}",
            "run": run,
            "data": data,
            "steps": run.steps.all().order_by("index", "attempt"),
            "budget_pct": _budget_pct(run),
            "left": max(run.budget_amount - run.spent, Decimal(0)),
            "report_html": markdown_render(run.report),
            "chart": selectors.run_chart(run),
            "figure_rows": _figure_rows(run),
            "can_cancel": run.is_active and _can_run(request),
        },
    )


def _figure_rows(run) -> list[dict]:
    from researcher.figures import FIGURE_LABELS

    tickers = list(run.figures or {})
    rows = []
    for key, label in FIGURE_LABELS.items():
        values = [(run.figures[t] or {}).get(key) for t in tickers]
        if any(v is not None for v in values):
            rows.append({"label": label, "values": ["n/a" if v is None else v for v in values]})
    return rows


@org_required
def run_status(request, run_id):
    """What the run page polls while the run is active."""
    run = _run_or_404(request, run_id)
    data = selectors.run_as_dict(run, detail=False)
    data["budget_pct"] = _budget_pct(run)
    data["active"] = run.is_active
    return JsonResponse(data)


@org_required
def run_markdown(request, run_id):
    run = _run_or_404(request, run_id)
    response = HttpResponse(run.report, content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="research-{str(run.pk)[:8]}.md"'
    return response


@org_required(Role.MEMBER)
@require_POST
def run_cancel_view(request, run_id):
    run = _run_or_404(request, run_id)
    run_cancel(run=run, actor=request.user)
    messages.info(request, "Cancel requested: the current step stops and its hold is released.")
    return redirect("researcher:run", run_id=run.pk)
