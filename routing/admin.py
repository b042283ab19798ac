"""Operators manage upstreams (secrets write-only), models and their routes here."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html

from accounts.admin_audit import AuditedAdminMixin
from routing.models import Model, Route, StoredResponse, Upstream
from routing.services import upstream_disable, upstream_enable


class UpstreamForm(forms.ModelForm):
    new_api_key = forms.CharField(
        label="API key",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only: leave empty to keep the stored key. It is never shown again.",
    )

    class Meta:
        model = Upstream
        fields = ["name", "provider", "base_url", "wallet", "timeout", "enabled"]

    def save(self, commit=True):
        upstream = super().save(commit=False)
        if self.cleaned_data.get("new_api_key"):
            upstream.set_api_key(self.cleaned_data["new_api_key"])
        if commit:
            upstream.save()
        return upstream


class DisabledFilter(admin.SimpleListFilter):
    title = "alerts"
    parameter_name = "alert"

    def lookups(self, request, model_admin):
        return [("disabled", "Disabled (needs an operator)")]

    def queryset(self, request, queryset):
        if self.value() == "disabled":
            return queryset.filter(enabled=False)
        return queryset


@admin.register(Upstream)
class UpstreamAdmin(AuditedAdminMixin, admin.ModelAdmin):
    form = UpstreamForm
    list_display = ["name", "provider", "wallet", "base_url", "timeout", "status", "disabled_at"]
    list_filter = [DisabledFilter, "provider", "wallet"]
    search_fields = ["name"]
    readonly_fields = ["has_api_key", "disabled_reason", "disabled_at", "created_at", "updated_at"]
    actions = ["action_enable", "action_disable"]

    @admin.display(description="status")
    def status(self, obj: Upstream):
        if obj.enabled:
            return format_html('<span style="color:#137333">enabled</span>')
        return format_html(
            '<strong style="color:#b3261e">DISABLED</strong> {}', obj.disabled_reason or ""
        )

    @admin.display(boolean=True, description="API key stored")
    def has_api_key(self, obj: Upstream) -> bool:
        return bool(obj.api_key_encrypted)

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_or_change_permission(request):
            return super().changelist_view(request, extra_context)  # Django's 403
        for upstream in Upstream.objects.filter(enabled=False).exclude(disabled_reason=""):
            since = (
                f" (since {upstream.disabled_at:%Y-%m-%d %H:%M} UTC)"
                if upstream.disabled_at
                else ""
            )
            self.message_user(
                request,
                f"Upstream {upstream.name} is disabled: {upstream.disabled_reason}{since}. "
                "Re-enable it once fixed.",
                level=messages.WARNING,
            )
        return super().changelist_view(request, extra_context)

    @admin.action(description="Enable selected upstreams", permissions=["change"])
    def action_enable(self, request, queryset):
        for upstream in queryset:
            upstream_enable(upstream_id=upstream.pk, actor=request.user)
        self.message_user(request, f"Enabled {queryset.count()} upstream(s).")

    @admin.action(description="Disable selected upstreams", permissions=["change"])
    def action_disable(self, request, queryset):
        for upstream in queryset:
            upstream_disable(
                upstream_id=upstream.pk, reason=f"disabled by {request.user}", actor=request.user
            )
        self.message_user(request, f"Disabled {queryset.count()} upstream(s).")


class RouteForm(forms.ModelForm):
    """Tiers are checked like a routing file's (`[{above_input_tokens, input, output, ...}]`)."""

    class Meta:
        model = Route
        fields = "__all__"  # noqa: DJ007 - the admin picks which to show

    def clean_price_tiers(self):
        from routing.services import RoutingFileError, tiers_validate

        try:
            return tiers_validate(self.cleaned_data.get("price_tiers") or [], "price_tiers")
        except RoutingFileError as exc:
            raise forms.ValidationError(str(exc)) from exc


class HandSetPricesMixin:
    """A price part an operator edits is hand-set from then on: `import_prices` keeps it."""

    def save_model(self, request, obj, form, change):
        changed = {f.removeprefix("price_") for f in form.changed_data}
        if obj.price_catalog_parts and changed:
            obj.price_catalog_parts = [p for p in obj.price_catalog_parts if p not in changed]
        super().save_model(request, obj, form, change)

    def save_formset(self, request, form, formset, change):
        for inline_form in formset.forms:
            obj = getattr(inline_form, "instance", None)
            changed = {f.removeprefix("price_") for f in inline_form.changed_data}
            if isinstance(obj, Route) and obj.price_catalog_parts and changed:
                obj.price_catalog_parts = [p for p in obj.price_catalog_parts if p not in changed]
        super().save_formset(request, form, formset, change)


class RouteInline(admin.TabularInline):
    model = Route
    form = RouteForm
    extra = 0
    fields = [
        "position",
        "upstream",
        "upstream_model",
        "weight",
        "price_input",
        "price_output",
        "price_cached_input",
        "price_cache_write",
        "price_cache_write_1h",
        "price_reasoning",
        "price_per_request",
        "enabled",
    ]
    ordering = ["position", "id"]
    autocomplete_fields = ["upstream"]


@admin.register(Model)
class ModelAdmin(HandSetPricesMixin, AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "enabled", "max_output_tokens", "route_count"]
    list_filter = ["enabled"]
    search_fields = ["name"]
    inlines = [RouteInline]

    @admin.display(description="routes")
    def route_count(self, obj: Model) -> int:
        return obj.routes.filter(enabled=True).count()


@admin.register(Route)
class RouteAdmin(HandSetPricesMixin, AuditedAdminMixin, admin.ModelAdmin):
    """Every route across models, to answer "which models does this upstream serve, at what
    price?"; the usual place to edit them is the model's page (inline). Unset parts follow
    the provider's rule (docs/billing.md); tiers are long-context prices."""

    form = RouteForm
    fieldsets = [
        (
            None,
            {"fields": ["model", "upstream", "upstream_model", "position", "weight", "enabled"]},
        ),
        (
            "Prices per 1M tokens (wallet currency; empty = the provider's rule)",
            {
                "fields": [
                    "price_input",
                    "price_output",
                    "price_cached_input",
                    "price_cache_write",
                    "price_cache_write_1h",
                    "price_reasoning",
                    "price_input_audio",
                    "price_output_audio",
                    "price_per_request",
                    "price_tiers",
                ]
            },
        ),
        ("From the price catalog", {"fields": ["context_window", "price_catalog_parts"]}),
    ]
    readonly_fields = ["price_catalog_parts"]

    list_display = [
        "model",
        "upstream",
        "upstream_model",
        "position",
        "weight",
        "price_input",
        "price_output",
        "price_cached_input",
        "enabled",
    ]
    list_filter = ["enabled", "upstream", "upstream__wallet", "model"]
    search_fields = ["model__name", "upstream__name", "upstream_model"]
    list_select_related = ["model", "upstream"]
    autocomplete_fields = ["upstream"]
    ordering = ["model__name", "position", "id"]


@admin.register(StoredResponse)
class StoredResponseAdmin(admin.ModelAdmin):
    """Stored /v1/responses answers, read-only: clients delete them through the API and the
    retention sweep removes old ones (RESPONSES_RETENTION_DAYS)."""

    list_display = ["id", "org", "model", "status", "request_id", "created_at"]
    list_filter = ["status"]
    search_fields = ["id", "request_id"]
    list_select_related = ["org"]
    raw_id_fields = ["org", "api_key"]
    show_full_result_count = False
    ordering = ["-created_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
