"""Operator admin for the ledger: wallets, transactions, postings, holds, usage records and
budgets, all read-only (money moves only through services). Corrections are admin actions
that post compensating transactions with a reason and the operator, through
`ledger.services.adjustments`. The operator overview page lives here too (`/admin/overview/`).
Top-up and redemption admin lives in `admin_topups`.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Q, Subquery, Sum
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from ledger import admin_topups  # noqa: F401 - registers top-up models
from ledger.errors import LedgerError
from ledger.models import (
    Account,
    AccountKind,
    Budget,
    BudgetAlert,
    BudgetCounter,
    FlushMark,
    Hold,
    Posting,
    Transaction,
    UsageRecord,
)
from ledger.money import Currency, admin_money, money_format
from ledger.selectors_operator import DateRange, date_range_default, operator_overview
from ledger.services.adjustments import adjustment_post, transaction_reverse

# --- filters that scale: a text box instead of a list of every organization -------------------


class InputFilter(admin.SimpleListFilter):
    """A list filter with a text input; `lookups` (ORM paths) are OR'ed, `id_lookup` is used
    when the typed value is a number."""

    template = "admin/ledger/input_filter.html"
    lookups_for_text: tuple[str, ...] = ()
    id_lookup: str | None = None

    def lookups(self, request, model_admin):
        return (("", ""),)  # a non-empty list so the filter is shown

    def choices(self, changelist):
        yield {
            "value": self.value() or "",
            "query_parts": [
                (key, value)
                for key, value in changelist.params.items()
                if key != self.parameter_name
            ],
        }

    def queryset(self, request, queryset):
        value = (self.value() or "").strip()
        if not value:
            return queryset
        if self.id_lookup and value.isdigit():
            return queryset.filter(**{self.id_lookup: int(value)})
        condition = Q()
        for lookup in self.lookups_for_text:
            condition |= Q(**{lookup: value})
        return queryset.filter(condition)


def text_filter(title: str, parameter: str, *lookups: str, id_lookup: str | None = None):
    return type(
        f"{parameter.title().replace('_', '')}Filter",
        (InputFilter,),
        {
            "title": title,
            "parameter_name": parameter,
            "lookups_for_text": lookups,
            "id_lookup": id_lookup,
        },
    )


def org_filter(path: str = "org"):
    return text_filter(
        "organization (slug or id)", "org", f"{path}__slug__iexact", id_lookup=f"{path}_id"
    )


ProjectFilter = text_filter(
    "project (name or id)", "project", "project__name__iexact", id_lookup="project_id"
)
KeyFilter = text_filter(
    "API key (prefix or id)", "key", "api_key__prefix__startswith", id_lookup="api_key_id"
)
ModelFilter = text_filter("model", "model", "model__iexact")
UpstreamFilter = text_filter("route (upstream)", "upstream", "upstream__iexact")
RunFilter = text_filter("researcher run", "run", "researcher_run_id__iexact")


class LedgerReadOnlyAdmin(admin.ModelAdmin):
    """Ledger rows are evidence: nobody adds, edits or deletes them here."""

    show_full_result_count = False
    list_per_page = 50

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_adjust_permission(self, request) -> bool:
        return request.user.is_superuser or request.user.has_perm("ledger.add_transaction")


# --- corrections --------------------------------------------------------------------------


class AdjustmentForm(forms.Form):
    currency = forms.ChoiceField(label="Wallet", choices=Currency.choices)
    amount = forms.DecimalField(
        label="Amount",
        decimal_places=10,
        max_digits=28,
        help_text="Signed: positive credits the wallet, negative debits it (never past zero).",
    )
    reason = forms.CharField(label="Reason", widget=forms.Textarea(attrs={"rows": 3}))

    def clean_amount(self) -> Decimal:
        amount = self.cleaned_data["amount"]
        if amount == 0:
            raise forms.ValidationError("The amount must not be zero.")
        return amount


class ReverseForm(forms.Form):
    reason = forms.CharField(label="Reason", widget=forms.Textarea(attrs={"rows": 3}))


def _correction_page(modeladmin, request, queryset, *, form, title, action, target):
    what = (
        f"that corrects transaction #{target.pk}"
        if isinstance(target, Transaction)
        else (f"that moves wallet {target}")
    )
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "form": form,
        "target": target,
        "what": what,
        "action_name": action,
        "queryset": queryset,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "opts": modeladmin.model._meta,
    }
    return TemplateResponse(request, "admin/ledger/correction_form.html", context)


def _one(modeladmin, request, queryset):
    if queryset.count() != 1:
        modeladmin.message_user(request, "Select exactly one row.", messages.ERROR)
        return None
    return queryset.get()


# --- wallets and system accounts ----------------------------------------------------------


@admin.register(Account)
class AccountAdmin(LedgerReadOnlyAdmin):
    list_display = (
        "id",
        "org",
        "kind",
        "currency",
        admin_money("posted", description="Posted"),
        admin_money("held", description="Held"),
        "available",
        "created_at",
    )
    list_filter = (org_filter(), "kind", "currency")
    search_fields = ("org__slug", "org__name")
    list_select_related = ("org",)
    actions = ["post_adjustment"]

    @admin.display(description="Available")
    def available(self, obj: Account) -> str:
        return money_format(obj.posted - obj.held, obj.currency)

    @admin.action(description="Post compensating adjustment", permissions=["adjust"])
    def post_adjustment(self, request, queryset):
        account = _one(self, request, queryset)
        if account is None:
            return None
        if account.kind != AccountKind.WALLET:
            self.message_user(request, "Adjustments go to organization wallets.", messages.ERROR)
            return None
        form = AdjustmentForm(
            request.POST if "apply" in request.POST else None,
            initial={"currency": account.currency},
        )
        form.fields["currency"].choices = [(account.currency, account.currency)]
        if form.is_bound and form.is_valid():
            try:
                txn = adjustment_post(
                    org=account.org,
                    currency=account.currency,
                    amount=form.cleaned_data["amount"],
                    reason=form.cleaned_data["reason"],
                    operator=request.user,
                )
            except LedgerError as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, f"Posted adjustment #{txn.pk}.", messages.SUCCESS)
                return None
        return _correction_page(
            self,
            request,
            queryset,
            form=form,
            title=f"Adjust wallet {account}",
            action="post_adjustment",
            target=account,
        )


# --- transactions and postings ------------------------------------------------------------


class PostingInline(admin.TabularInline):
    model = Posting
    fields = ("account", "currency", "amount")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("account", "account__org")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


def _wallet_amount():
    """The amount that moved the organization's wallet, for the list (one subquery)."""
    return Subquery(
        Posting.objects.filter(transaction=OuterRef("pk"), account__kind=AccountKind.WALLET)
        .values("transaction")
        .annotate(total=Sum("amount"))
        .values("total")[:1]
    )


class WalletMovedFilter(admin.SimpleListFilter):
    title = "wallet"
    parameter_name = "wallet"

    def lookups(self, request, model_admin):
        return Currency.choices

    def queryset(self, request, queryset):
        if self.value() not in Currency.values:
            return queryset
        moved = Posting.objects.filter(
            transaction=OuterRef("pk"), account__kind=AccountKind.WALLET, currency=self.value()
        )
        return queryset.filter(Exists(moved))


@admin.register(Transaction)
class TransactionAdmin(LedgerReadOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "org",
        "kind",
        "wallet_amount",
        "reference",
        "corrects_link",
        "created_by",
        "reason_short",
    )
    list_filter = (org_filter(), WalletMovedFilter, "kind", "created_at")
    search_fields = ("reference", "reason", "org__slug", "usage__request_id")
    list_select_related = ("org", "created_by", "corrects")
    date_hierarchy = "created_at"
    inlines = (PostingInline,)
    actions = ["post_adjustment", "reverse"]
    readonly_fields = ("corrections_list",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_wallet_amount=_wallet_amount())

    @admin.display(description="Wallet amount", ordering="_wallet_amount")
    def wallet_amount(self, obj):
        return obj._wallet_amount

    @admin.display(description="Corrects")
    def corrects_link(self, obj):
        if not obj.corrects_id:
            return ""
        url = reverse("admin:ledger_transaction_change", args=[obj.corrects_id])
        return format_html('<a href="{}">#{}</a>', url, obj.corrects_id)

    @admin.display(description="Reason")
    def reason_short(self, obj):
        return (obj.reason[:60] + "…") if len(obj.reason) > 60 else obj.reason

    @admin.display(description="Corrected by")
    def corrections_list(self, obj):
        ids = list(obj.corrections.values_list("pk", flat=True))
        return ", ".join(f"#{pk}" for pk in ids) or "—"

    @admin.action(description="Post compensating adjustment", permissions=["adjust"])
    def post_adjustment(self, request, queryset):
        txn = _one(self, request, queryset)
        if txn is None:
            return None
        if txn.org_id is None:
            self.message_user(request, "This transaction has no organization.", messages.ERROR)
            return None
        leg = txn.postings.filter(account__kind=AccountKind.WALLET).first()
        form = AdjustmentForm(
            request.POST if "apply" in request.POST else None,
            initial={"currency": leg.currency if leg else Currency.CREDIT},
        )
        if form.is_bound and form.is_valid():
            try:
                posted = adjustment_post(
                    org=txn.org,
                    currency=form.cleaned_data["currency"],
                    amount=form.cleaned_data["amount"],
                    reason=form.cleaned_data["reason"],
                    operator=request.user,
                    corrects=txn,
                )
            except LedgerError as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(
                    request,
                    f"Posted adjustment #{posted.pk} correcting #{txn.pk}.",
                    messages.SUCCESS,
                )
                return None
        return _correction_page(
            self,
            request,
            queryset,
            form=form,
            title=f"Compensating adjustment for transaction #{txn.pk}",
            action="post_adjustment",
            target=txn,
        )

    @admin.action(description="Reverse (refund usage, undo a credit)", permissions=["adjust"])
    def reverse(self, request, queryset):
        txn = _one(self, request, queryset)
        if txn is None:
            return None
        form = ReverseForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            try:
                posted = transaction_reverse(
                    transaction=txn, reason=form.cleaned_data["reason"], operator=request.user
                )
            except LedgerError as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(
                    request, f"Posted #{posted.pk} reversing #{txn.pk}.", messages.SUCCESS
                )
                return None
        return _correction_page(
            self,
            request,
            queryset,
            form=form,
            title=f"Reverse transaction #{txn.pk}",
            action="reverse",
            target=txn,
        )


@admin.register(Posting)
class PostingAdmin(LedgerReadOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "transaction",
        "account",
        "currency",
        admin_money("amount", description="Amount"),
    )
    list_filter = (org_filter("account__org"), "currency", "account__kind", "transaction__kind")
    search_fields = ("transaction__reference", "account__org__slug")
    list_select_related = ("transaction", "account", "account__org")
    raw_id_fields = ("transaction", "account")

    @admin.display(description="Created", ordering="transaction__created_at")
    def created_at(self, obj):
        return obj.transaction.created_at


# --- holds, usage, budgets ----------------------------------------------------------------


@admin.register(Hold)
class HoldAdmin(LedgerReadOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "org",
        "wallet",
        "amount",
        "status",
        "captured_amount",
        "expires_at",
        "resolved_at",
        "request_id",
    )
    list_filter = (org_filter(), "status", "wallet__currency", "created_at")
    search_fields = ("request_id", "org__slug")
    list_select_related = ("org", "wallet", "wallet__org")
    date_hierarchy = "created_at"


class AnomalyFilter(admin.SimpleListFilter):
    """Requests whose reported usage the gateway had to correct (routing/usage_guard.py)."""

    title = "anomalies"
    parameter_name = "anomalies"

    def lookups(self, request, model_admin):
        return [("yes", "With anomalies")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(anomalies=[])
        return queryset


@admin.register(UsageRecord)
class UsageRecordAdmin(LedgerReadOnlyAdmin):
    list_display = (
        "created_at",
        "request_id",
        "org",
        "project",
        "api_key",
        "kind",
        "model",
        "upstream",
        "wallet",
        "prompt_tokens",
        "completion_tokens",
        "cost",
        "reported_cost",
        "status",
        "fallback",
        "stream",
        "latency_ms",
    )
    list_filter = (
        org_filter(),
        ProjectFilter,
        KeyFilter,
        ModelFilter,
        UpstreamFilter,
        RunFilter,
        "wallet",
        "kind",
        "status",
        "fallback",
        "stream",
        AnomalyFilter,
        "created_at",
    )
    search_fields = ("request_id", "model", "upstream", "org__slug")
    list_select_related = ("org", "project", "api_key")
    raw_id_fields = ("org", "project", "api_key", "hold", "transaction")
    date_hierarchy = "created_at"


@admin.register(Budget)
class BudgetAdmin(LedgerReadOnlyAdmin):
    list_display = (
        "id",
        "org",
        "project",
        "api_key",
        "currency",
        "amount",
        "period",
        "soft_threshold",
        "created_at",
        "removed_at",
    )
    list_filter = (
        org_filter(),
        ProjectFilter,
        KeyFilter,
        "currency",
        "period",
        ("removed_at", admin.EmptyFieldListFilter),
    )
    search_fields = ("org__slug", "project__name", "api_key__prefix")
    list_select_related = ("org", "project", "api_key")


@admin.register(BudgetCounter)
class BudgetCounterAdmin(LedgerReadOnlyAdmin):
    list_display = ("id", "budget", "org", "period_start", "reserved", "spent", "alerted_at")
    list_filter = (org_filter("budget__org"), "budget__currency", "budget__period", "period_start")
    search_fields = ("budget__org__slug", "budget__project__name", "budget__api_key__prefix")
    list_select_related = ("budget", "budget__org")
    date_hierarchy = "period_start"

    @admin.display(description="Organization")
    def org(self, obj):
        return obj.budget.org


@admin.register(BudgetAlert)
class BudgetAlertAdmin(LedgerReadOnlyAdmin):
    list_display = ("id", "created_at", "org", "budget", "period_start", "threshold", "spent")
    list_filter = (org_filter(), "budget__currency", "created_at")
    search_fields = ("org__slug",)
    list_select_related = ("org", "budget")
    date_hierarchy = "created_at"


# --- the operator overview ----------------------------------------------------------------


class OverviewRangeForm(forms.Form):
    start = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To (inclusive)", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            raise forms.ValidationError("The start date must not be after the end date.")
        return data


def overview_view(request):
    """Revenue, upstream cost and margin, upstream health, largest organizations and
    researcher runs over a date range. Wrapped in `admin_view` (staff only) in the URLconf;
    revenue and margins are ledger data, so it also needs `ledger.view_transaction`."""
    if not request.user.has_perm("ledger.view_transaction"):
        raise PermissionDenied
    default = date_range_default()
    form = OverviewRangeForm(
        request.GET or None, initial={"start": default.start, "end": default.end}
    )
    window = default
    if form.is_bound and form.is_valid():
        window = DateRange(start=form.cleaned_data["start"], end=form.cleaned_data["end"])
    context = {
        **admin.site.each_context(request),
        "title": "Operator overview",
        "form": form,
        **operator_overview(window=window),
    }
    return TemplateResponse(request, "admin/ledger/overview.html", context)


@admin.register(FlushMark)
class FlushMarkAdmin(admin.ModelAdmin):
    """The flush barrier's per-backend counters (routing/db.py): read-only, for curiosity."""

    list_display = ("backend_pid", "flushes")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
