"""A project's page and a key's page: settings, keys, and budgets with progress bars.

They live in the ledger app because they show money (budgets and their counters), and the
ledger sits above projects; the forms post to `projects:*` for project and key settings and
to the budget views here for budgets (admins and owners only).
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.decorators import org_required
from ledger.errors import InvalidAmount
from ledger.models import Period
from ledger.selectors import budgets_status
from ledger.selectors_dashboard import budgets_active
from ledger.selectors_forecast import forecast_get
from ledger.selectors_savings import savings_get
from ledger.services.budgets import budget_remove, budget_set
from projects.forms import KeyForm, ProjectForm
from projects.selectors import key_get, keys_list, project_get


class BudgetForm(forms.Form):
    currency = forms.ChoiceField(
        label="Wallet", choices=[("CREDIT", "Credit (USD)"), ("RMB", "RMB (CNY)")]
    )
    amount = forms.DecimalField(
        label="Limit",
        min_value=Decimal("0.0001"),
        max_value=Decimal("1000000"),
        decimal_places=4,
        error_messages={
            "required": "Enter the budget's limit, e.g. 25.",
            "invalid": "Enter the limit as a number, e.g. 25 or 2.50.",
            "min_value": "A limit must be more than zero; to stop a budget, remove it.",
            "max_value": "A limit can be at most 1,000,000.",
            "max_decimal_places": "Use at most 4 decimals for a limit.",
            "max_digits": "A limit can be at most 1,000,000.",
            "max_whole_digits": "A limit can be at most 1,000,000.",
        },
    )
    period = forms.ChoiceField(
        label="Period",
        choices=[
            ("month", "Per calendar month (UTC)"),
            ("week", "Per week, from Monday (UTC)"),
            ("day", "Per day (UTC)"),
            ("total", "In total, counted from when the budget is set"),
        ],
        initial=Period.MONTH,
    )
    soft_threshold = forms.DecimalField(
        label="Alert when this share is used (%)",
        min_value=Decimal("0"),
        max_value=Decimal("100"),
        decimal_places=2,
        initial=80,
        required=False,
        help_text="We email the organization's admins once the budget is this far used.",
        error_messages={
            "min_value": "The alert share must be between 1 and 100 percent.",
            "max_value": "The alert share must be between 1 and 100 percent.",
            "invalid": "Enter the alert share as a percentage, e.g. 80.",
            "max_decimal_places": "Enter the alert share as a percentage, e.g. 80.",
        },
    )

    def clean_soft_threshold(self):
        """A percentage (80); a value up to 1 is read as a fraction (0.8), as the API takes."""
        value = self.cleaned_data["soft_threshold"]
        if value is None:
            return None
        return value if value <= 1 else value / 100


def form_errors_sentence(form: forms.Form) -> str:
    """A form's errors as sentences for people (never `field: ...`)."""
    return " ".join(str(error) for errors in form.errors.values() for error in errors)


def _with_progress(rows: list[dict]) -> list[dict]:
    """Adds the used share (spent + held over the limit) for the progress bars."""
    for row in rows:
        used = row["spent"] + row["held"]
        row["used"] = used
        row["percent"] = (
            min(int(used * 100 / row["limit"]), 100) if row["limit"] > 0 else (100 if used else 0)
        )
        row["state"] = (
            "over"
            if row["percent"] >= 100
            else "warn"
            if used >= row["limit"] * row["soft_threshold"]
            else ""
        )
    return rows


@org_required
def project_detail(request, pk: int):
    project = project_get(org=request.org, pk=pk)
    if project is None:
        raise Http404("No such project.")
    budgets = [b for b in budgets_status(project_id=project.pk) if b["scope"] == "project"]
    return render(
        request,
        "ledger/project_detail.html",
        {
            "title": f"Project {project.name}",
            "project": project,
            "form": ProjectForm(initial={"name": project.name, "environment": project.environment}),
            "budgets": _with_progress(budgets),
            "budget_form": BudgetForm(),
            "forecast": forecast_get(org=request.org, project_id=project.pk),
            "savings": savings_get(org=request.org, by="month", project_id=project.pk),
            "keys": keys_list(org=request.org, project_id=project.pk),
            "now": timezone.now(),
            "can_manage": request.membership.has_role("admin"),
            "can_create_keys": request.membership.has_role("member"),
        },
    )


@org_required
def key_detail(request, pk: int):
    api_key = key_get(org=request.org, pk=pk)
    if api_key is None:
        raise Http404("No such key.")
    budgets = [
        b
        for b in budgets_status(project_id=api_key.project_id, api_key_id=api_key.pk)
        if b["scope"] == "key"
    ]
    return render(
        request,
        "ledger/key_detail.html",
        {
            "title": f"Key {api_key.prefix}…",
            "api_key": api_key,
            "settings": KeyForm.initial_for(api_key),
            "budgets": _with_progress(budgets),
            "budget_form": BudgetForm(),
            "forecast": forecast_get(org=request.org, api_key_id=api_key.pk),
            "now": timezone.now(),
            "can_manage": request.membership.has_role("admin"),
            "can_edit": request.membership.has_role("member"),
        },
    )


def _budget_owner(request, scope: str, pk: int):
    if scope == "project":
        owner = project_get(org=request.org, pk=pk)
    elif scope == "key":
        owner = key_get(org=request.org, pk=pk)
    else:
        owner = None
    if owner is None:
        raise Http404("No such project or key.")
    return owner


def _back(scope: str, pk: int):
    return redirect("ledger:project_detail" if scope == "project" else "ledger:key_detail", pk=pk)


@require_POST
@org_required("admin")
def budget_save(request, scope: str, pk: int):
    owner = _budget_owner(request, scope, pk)
    form = BudgetForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Budget not saved. " + form_errors_sentence(form))
        return _back(scope, pk)
    try:
        budget_set(
            org=request.org,
            currency=form.cleaned_data["currency"],
            amount=form.cleaned_data["amount"],
            period=form.cleaned_data["period"],
            soft_threshold=form.cleaned_data["soft_threshold"],
            actor=request.user,
            **({"project": owner} if scope == "project" else {"api_key": owner}),
        )
        messages.success(request, "Budget saved.")
    except (InvalidAmount, ValueError) as exc:
        messages.error(request, f"Budget not saved: {exc}")
    return _back(scope, pk)


@require_POST
@org_required("admin")
def budget_delete(request, budget_id: int):
    budget = budgets_active(org=request.org).filter(pk=budget_id).first()
    if budget is None:
        raise Http404("No such budget.")
    budget_remove(budget=budget, actor=request.user)
    messages.success(request, "Budget removed.")
    if budget.api_key_id:
        return _back("key", budget.api_key_id)
    return _back("project", budget.project_id)
