"""Admin for top-ups, webhook events and redemption-code batches.

Adding a TopUp in admin is an operator grant (`topup_grant`); adding a RedemptionBatch
generates its codes (`redemption_batch_create`) and shows them once, with a CSV download
built in the page, so plain codes are never stored anywhere.
"""

from __future__ import annotations

import io
from decimal import Decimal
from urllib.parse import quote

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from accounts.csv_safe import csv_writer
from accounts.models import Organization
from ledger.errors import LedgerError
from ledger.models import (
    PaymentReversal,
    RedemptionBatch,
    RedemptionCode,
    TopUp,
    Transaction,
    WalletWatch,
    WebhookEvent,
)
from ledger.money import Currency
from ledger.services.redemptions import BATCH_MAX, redemption_batch_create
from ledger.services.topups import topup_grant


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class GrantForm(forms.Form):
    org = forms.ModelChoiceField(
        label="Organization", queryset=Organization.objects.order_by("slug")
    )
    currency = forms.ChoiceField(label="Wallet", choices=Currency.choices)
    amount = forms.DecimalField(label="Amount", min_value=Decimal("0"), decimal_places=10)
    reference = forms.CharField(
        label="Reference", max_length=180, help_text="Idempotency key: the same one credits once."
    )
    reason = forms.CharField(label="Reason", required=False, widget=forms.Textarea)


@admin.register(TopUp)
class TopUpAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "org",
        "provider",
        "currency",
        "amount",
        "status",
        "external_id",
    )
    list_filter = ("provider", "status", "currency", "org")
    search_fields = ("external_id", "org__slug", "org__name", "created_by__email")
    list_select_related = ("org",)
    raw_id_fields = ("org", "transaction", "created_by")
    date_hierarchy = "created_at"
    show_full_result_count = False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def add_view(self, request, form_url="", extra_context=None):
        """ "Add top-up" is an operator grant through the idempotent service: it creates
        money, so it needs `ledger.add_topup` like Django's own add view would."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = GrantForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                txn = topup_grant(
                    org=data["org"],
                    currency=data["currency"],
                    amount=data["amount"],
                    reference=data["reference"],
                    actor=request.user,
                    reason=data["reason"],
                )
            except (LedgerError, ValueError) as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"Granted: transaction #{txn.pk}.")
                return redirect("admin:ledger_topup_changelist")
        context = {
            **self.admin_site.each_context(request),
            "title": "Grant balance to an organization",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "ledger/topup_admin_form.html", context)


class ReceivableFilter(admin.SimpleListFilter):
    title = "receivable"
    parameter_name = "receivable"

    def lookups(self, request, model_admin):
        return [("yes", "Customer owes money (beyond the wallet)")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(to_receivable__gt=0)
        return queryset


@admin.register(PaymentReversal)
class PaymentReversalAdmin(ReadOnlyAdmin):
    """Card refunds and disputes from Stripe; the money moved in `chargeback` transactions."""

    list_display = (
        "updated_at",
        "org",
        "kind",
        "status",
        "external_id",
        "topup",
        "currency",
        "amount",
        "from_wallet",
        "to_receivable",
    )
    list_filter = (ReceivableFilter, "kind", "status", "currency")
    search_fields = ("external_id", "charge_id", "org__slug", "org__name")
    list_select_related = ("org", "topup")
    readonly_fields = ("transactions",)
    date_hierarchy = "created_at"
    show_full_result_count = False

    @admin.display(description="Ledger transactions")
    def transactions(self, obj):
        refs = Q(reference__startswith=f"stripe-refund:{obj.external_id}:")
        if obj.kind == "dispute":
            refs = Q(reference=f"stripe-dispute:{obj.external_id}") | Q(
                reference=f"stripe-dispute-won:{obj.external_id}"
            )
        rows = Transaction.objects.filter(refs).order_by("pk")
        return format_html_join(
            ", ",
            '<a href="{}">#{} {}</a>',
            (
                (reverse("admin:ledger_transaction_change", args=[t.pk]), t.pk, t.reference)
                for t in rows
            ),
        ) or format_html("{}", "—")


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "provider", "event_type", "event_id")
    list_filter = ("provider", "event_type")
    search_fields = ("event_id",)
    date_hierarchy = "received_at"


class BatchForm(forms.Form):
    name = forms.CharField(label="Name", max_length=120)
    currency = forms.ChoiceField(label="Wallet", choices=Currency.choices)
    amount = forms.DecimalField(label="Amount per code", min_value=Decimal("0"), decimal_places=10)
    count = forms.IntegerField(label="Number of codes", min_value=1, max_value=BATCH_MAX)
    expires_at = forms.DateTimeField(
        label="Expires at (optional, UTC)", required=False, help_text="YYYY-MM-DD HH:MM"
    )


@admin.register(RedemptionBatch)
class RedemptionBatchAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "name",
        "currency",
        "amount",
        "count",
        "redeemed",
        "expires_at",
        "created_at",
    )
    list_filter = ("currency",)
    search_fields = ("name",)
    readonly_fields = (
        "name",
        "currency",
        "amount",
        "count",
        "expires_at",
        "created_by",
        "created_at",
    )
    actions = ["generate_like"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Redeemed")
    def redeemed(self, obj):
        return obj.codes.filter(redeemed_at__isnull=False).count()

    def add_view(self, request, form_url="", extra_context=None):
        """Generate a batch and show its codes once (they are stored hashed). Codes are
        money, so this needs `ledger.add_redemptionbatch`."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = BatchForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                batch, codes = redemption_batch_create(actor=request.user, **form.cleaned_data)
            except (LedgerError, ValueError) as exc:
                form.add_error(None, str(exc))
            else:
                return self._codes_response(request, batch, codes)
        context = {
            **self.admin_site.each_context(request),
            "title": "Generate redemption codes",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "ledger/topup_admin_form.html", context)

    @admin.action(description="Generate a new batch like the selected one", permissions=["add"])
    def generate_like(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one batch.", messages.ERROR)
            return None
        source = queryset.get()
        batch, codes = redemption_batch_create(
            name=f"{source.name} (again)",
            currency=source.currency,
            amount=source.amount,
            count=source.count,
            expires_at=source.expires_at,
            actor=request.user,
        )
        return self._codes_response(request, batch, codes)

    def _codes_response(self, request, batch, codes):
        buffer = io.StringIO()
        writer = csv_writer(buffer)
        writer.writerow(["code", "currency", "amount", "expires_at", "batch"])
        expires = batch.expires_at.isoformat() if batch.expires_at else ""
        for code in codes:
            writer.writerow(
                [code, batch.currency, f"{batch.amount.normalize():f}", expires, batch.name]
            )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Codes of batch {batch.name}",
            "batch": batch,
            "codes": codes,
            "csv_href": "data:text/csv;charset=utf-8," + quote(buffer.getvalue()),
            "csv_name": f"redemption-batch-{batch.pk}.csv",
            "opts": self.model._meta,
        }
        response = TemplateResponse(request, "ledger/topup_admin_codes.html", context)
        response["Cache-Control"] = "no-store"
        return response


@admin.register(RedemptionCode)
class RedemptionCodeAdmin(ReadOnlyAdmin):
    list_display = ("prefix", "batch", "redeemed_at", "redeemed_by_org", "redeemed_by")
    list_filter = ("batch__currency", ("redeemed_at", admin.EmptyFieldListFilter), "batch")
    search_fields = ("prefix", "batch__name", "redeemed_by_org__slug")
    list_select_related = ("batch", "redeemed_by_org", "redeemed_by")
    show_full_result_count = False


@admin.register(WalletWatch)
class WalletWatchAdmin(admin.ModelAdmin):
    """Low-balance alerts and Credit auto top-up, as each organization's owners set them."""

    list_display = (
        "org",
        "currency",
        "alert_threshold",
        "alerted_at",
        "auto_topup_enabled",
        "auto_topup_amount",
        "auto_topup_last_error",
    )
    list_filter = ("currency", "auto_topup_enabled")
    search_fields = ("org__slug", "org__name")
    list_select_related = ("org",)
    raw_id_fields = ("org",)
    readonly_fields = ("webhook_secret", "stripe_customer_id", "alerted_at", "auto_topup_last_at")
