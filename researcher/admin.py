"""Operators see every run: filters (status, organization, project, model, date), the steps
inline, spend against the budget, and a cancel action (needs the change permission)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html

from ledger.admin import ModelFilter, ProjectFilter, org_filter
from researcher.models import ResearchRun, ResearchStep
from researcher.services import run_cancel


class StepInline(admin.TabularInline):
    model = ResearchStep
    extra = 0
    can_delete = False
    fields = [
        "index",
        "attempt",
        "name",
        "status",
        "request_id",
        "route",
        "wallet",
        "paid_by",
        "prompt_tokens",
        "completion_tokens",
        "max_tokens",
        "cost",
        "latency_ms",
        "error",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ResearchRun)
class ResearchRunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "org",
        "project",
        "status",
        "model",
        "depth",
        "spend_vs_budget",
        "created_at",
    ]
    list_filter = ["status", org_filter(), ProjectFilter, ModelFilter, "depth", "created_at"]
    list_select_related = ["org", "project"]
    search_fields = ["id", "question"]
    date_hierarchy = "created_at"
    inlines = [StepInline]
    actions = ["action_cancel"]
    show_full_result_count = False
    readonly_fields = [f.name for f in ResearchRun._meta.fields if f.name not in ("id",)] + [
        "spend_vs_budget"
    ]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="spent / budget")
    def spend_vs_budget(self, run: ResearchRun):
        pct = int(run.spent / run.budget_amount * 100) if run.budget_amount else 0
        return format_html(
            "{} / {} {} ({}%)",
            run.spent.normalize(),
            run.budget_amount.normalize(),
            run.budget_currency,
            pct,
        )

    @admin.action(description="Cancel the selected runs", permissions=["change"])
    def action_cancel(self, request, queryset):
        cancelled = 0
        for run in queryset:
            if run.is_active:
                run_cancel(run=run, actor=request.user)
                cancelled += 1
        self.message_user(request, f"Cancel requested for {cancelled} run(s).", messages.INFO)


@admin.register(ResearchStep)
class ResearchStepAdmin(admin.ModelAdmin):
    """Every step, read-only: its request id leads to the usage record and the ledger."""

    list_display = ["request_id", "run", "name", "attempt", "status", "route", "paid_by", "cost"]
    list_filter = ["status", "name", "paid_by"]
    list_select_related = ["run"]
    search_fields = ["request_id", "run__id"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
