"""Top up: card payment for Credit (Stripe Checkout, or the labelled test provider under DEBUG),
redemption codes, and the history; plus the Stripe webhook endpoint."""

from __future__ import annotations

import logging

from django import forms
from django.contrib import messages
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts.decorators import org_required
from accounts.models import Role
from ledger.errors import LedgerError
from ledger.models import Account, AccountKind, TopUp, TopUpProvider, TopUpStatus
from ledger.money import WALLET_ISO, money_format, wallet_name
from ledger.services.redemptions import redemption_redeem
from ledger.services.reversals import ReversalTooEarly
from ledger.services.topups import (
    CHECKOUT_MAXIMUMS,
    CHECKOUT_MINIMUMS,
    WebhookRejected,
    card_topup_available,
    checkout_amount_validate,
    checkout_start,
    stripe_configured,
    stripe_webhook_handle,
    testpay_complete,
    testpay_enabled,
    testpay_start,
    topup_cancel,
    topup_method,
)
from ledger.services.wallet_watch import auto_topup_set, wallet_alert_set, watch_of
from ledger.templatetags.money import money
from ledger.views.budgets import form_errors_sentence

logger = logging.getLogger(__name__)


class CheckoutForm(forms.Form):
    """One wallet's top-up amount; the limits are the payment provider's, said as sentences."""

    currency = forms.ChoiceField(
        choices=[("CREDIT", "Credit (USD)"), ("RMB", "RMB (CNY)")],
        initial="CREDIT",
        required=False,
        widget=forms.HiddenInput,
    )
    amount = forms.DecimalField(
        label="Amount",
        max_digits=12,
        decimal_places=2,
        error_messages={
            "required": "Enter how much to add, e.g. 20.",
            "invalid": "Enter the amount as a number, e.g. 20 or 12.50.",
            "max_decimal_places": "Use at most 2 decimals (cents or fen).",
            "max_digits": "That amount is too large for one top-up.",
            "max_whole_digits": "That amount is too large for one top-up.",
        },
    )

    def __init__(self, *args, currency: str = "CREDIT", **kwargs):
        super().__init__(*args, **kwargs)
        self.wallet = currency
        self.fields["currency"].initial = currency
        low, high = CHECKOUT_MINIMUMS[currency], CHECKOUT_MAXIMUMS[currency]
        self.fields["amount"].help_text = (
            f"In {WALLET_ISO[currency].upper()}, from {money_format(low, currency)} to "
            f"{money_format(high, currency, total=True)}; added to your {wallet_name(currency)} "
            "wallet."
        )
        self.fields["amount"].widget.attrs.update(
            {"min": str(low), "max": str(high), "step": "0.01", "inputmode": "decimal"}
        )
        if currency != "CREDIT":  # two forms on one page: distinct ids (Credit keeps id_amount)
            self.auto_id = f"id_{currency.lower()}_%s"

    def clean(self):
        data = super().clean()
        data["currency"] = data.get("currency") or self.wallet
        if data.get("amount") is not None:
            try:
                checkout_amount_validate(data["amount"], data["currency"])
            except LedgerError as exc:
                self.add_error("amount", str(exc))
        return data


class RedeemForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=40,
        help_text="A code such as TF-ABCD-EFGH-JKLM-NPQR, for either wallet.",
        error_messages={"required": "Enter the code you received."},
    )


class AlertForm(forms.Form):
    """A wallet's low-balance alert: under this available balance, email and/or webhook."""

    currency = forms.ChoiceField(
        choices=[("CREDIT", "Credit (USD)"), ("RMB", "RMB (CNY)")], widget=forms.HiddenInput
    )
    threshold = forms.DecimalField(
        label="Alert when available falls under",
        required=False,
        max_digits=16,
        decimal_places=2,
        help_text="Empty turns the alert off.",
        error_messages={
            "invalid": "Enter the alert balance as a number, e.g. 5.",
            "max_decimal_places": "Use at most 2 decimals for the alert balance.",
            "max_digits": "That alert balance is too large.",
            "max_whole_digits": "That alert balance is too large.",
        },
    )
    email = forms.BooleanField(label="Email the owners and admins", required=False, initial=True)
    webhook_url = forms.URLField(
        label="Webhook URL (optional)",
        required=False,
        assume_scheme="https",
        help_text="We POST a JSON event signed with X-Tokenforge-Signature (HMAC-SHA256).",
        error_messages={
            "invalid": "Enter the webhook as a full URL, e.g. https://example.com/hook."
        },
    )

    def __init__(self, *args, currency: str = "CREDIT", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["currency"].initial = currency
        self.auto_id = f"id_alert_{currency.lower()}_%s"


class AutoTopupForm(forms.Form):
    enabled = forms.BooleanField(label="Top up Credit automatically", required=False)
    threshold = forms.DecimalField(
        label="When available falls under (USD)",
        required=False,
        max_digits=12,
        decimal_places=2,
        error_messages={"invalid": "Enter the trigger balance as a number, e.g. 5."},
    )
    amount = forms.DecimalField(
        label="Add this much (USD)",
        required=False,
        max_digits=12,
        decimal_places=2,
        error_messages={"invalid": "Enter the amount to add as a number, e.g. 20."},
    )
    test_card = forms.ChoiceField(
        label="Test card",
        required=False,
        choices=[("test_card", "Succeeds"), ("test_card_declined", "Is declined")],
        help_text="Test payment provider only: no real money.",
    )

    def __init__(self, *args, test_provider: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.auto_id = "id_auto_%s"
        if not test_provider:
            del self.fields["test_card"]


def topups_with_numbers(org) -> list[TopUp]:
    """The org's top-ups, newest first, each with its receipt number counted within the
    organization (R-0001, ...), so no customer sees another's volume."""
    rows = list(TopUp.objects.for_org(org).select_related("created_by").order_by("pk"))
    for number, topup in enumerate(rows, start=1):
        topup.receipt_number = f"R-{number:04d}"
        topup.method = topup_method(topup)
    rows.reverse()
    return rows


def _page(request, *, checkout_form=None, redeem_form=None, status=200):
    org = request.org
    can_top_up = request.membership.has_role(Role.ADMIN)
    forms_by_wallet = {c: CheckoutForm(currency=c) for c in ("CREDIT", "RMB")}
    watches = {c: watch_of(org=org, currency=c) for c in ("CREDIT", "RMB")}
    alert_forms = [
        AlertForm(
            currency=c,
            initial={
                "currency": c,
                "threshold": watches[c].alert_threshold,
                "email": watches[c].alert_email,
                "webhook_url": watches[c].webhook_url,
            },
        )
        for c in ("CREDIT", "RMB")
    ]
    credit_watch = watches["CREDIT"]
    auto_form = AutoTopupForm(
        test_provider=testpay_enabled(),
        initial={
            "enabled": credit_watch.auto_topup_enabled,
            "threshold": credit_watch.auto_topup_threshold,
            "amount": credit_watch.auto_topup_amount,
            "test_card": credit_watch.stripe_customer_id or "test_card",
        },
    )
    if checkout_form is not None:
        forms_by_wallet[checkout_form.wallet] = checkout_form
    return render(
        request,
        "ledger/topup.html",
        {
            "title": "Top up",
            "wallets": Account.objects.for_org(org)
            .filter(kind=AccountKind.WALLET)
            .order_by("currency"),
            "topups": topups_with_numbers(org)[:100],
            "can_top_up": can_top_up,
            "card_available": card_topup_available(),
            "test_provider": testpay_enabled(),
            "wallet_forms": [forms_by_wallet["CREDIT"], forms_by_wallet["RMB"]],
            "alert_rows": [
                {"form": f, "watch": watches[c]}
                for f, c in zip(alert_forms, ("CREDIT", "RMB"), strict=False)
            ],
            "auto_form": auto_form,
            "credit_watch": credit_watch,
            "saved_card": bool(credit_watch.stripe_customer_id),
            "checkout_form": checkout_form or forms_by_wallet["CREDIT"],
            "redeem_form": redeem_form or RedeemForm(),
        },
        status=status,
    )


@org_required
def topup_page(request):
    if request.GET.get("paid"):
        messages.info(request, "Thank you: the money appears once the payment is confirmed.")
        return redirect("ledger:topup")
    cancelled = request.GET.get("cancelled", "")
    if cancelled.isdigit():
        if topup_cancel(org=request.org, topup_id=int(cancelled), actor=request.user):
            messages.info(request, "Payment cancelled: nothing was charged.")
        return redirect("ledger:topup")
    return _page(request)


@require_POST
@org_required(Role.ADMIN)
def topup_checkout(request):
    currency = request.POST.get("currency") if request.POST.get("currency") == "RMB" else "CREDIT"
    form = CheckoutForm(request.POST, currency=currency)
    if not card_topup_available():
        messages.error(request, "Card top-up is unavailable.")
        return redirect("ledger:topup")
    if not form.is_valid():
        return _page(request, checkout_form=form, status=400)
    try:
        if stripe_configured():
            page = request.build_absolute_uri(reverse("ledger:topup"))
            topup, url = checkout_start(
                org=request.org,
                amount=form.cleaned_data["amount"],
                currency=currency,
                actor=request.user,
                success_url=page + "?paid=1&session_id={CHECKOUT_SESSION_ID}",
                cancel_url=page + "?cancelled={TOPUP_ID}",
            )
            return redirect(url)
        topup = testpay_start(
            org=request.org,
            amount=form.cleaned_data["amount"],
            actor=request.user,
            currency=currency,
        )
    except (LedgerError, ValueError) as exc:
        form.add_error("amount", str(exc))
        return _page(request, checkout_form=form, status=400)
    except Exception:  # the payment provider failed; never a 500 for the user
        logger.exception("Stripe Checkout Session creation failed")
        messages.error(request, "The payment provider could not be reached; try again later.")
        return redirect("ledger:topup")
    return redirect("ledger:topup_test_pay", pk=topup.pk)


@org_required(Role.ADMIN)
def topup_test_pay(request, pk: int):
    if not testpay_enabled():
        raise Http404("The test payment provider is off.")
    topup = TopUp.objects.for_org(request.org).filter(pk=pk, provider=TopUpProvider.TEST).first()
    if topup is None:
        raise Http404("No such test payment.")
    if request.method == "POST":
        if request.POST.get("action") == "cancel":
            topup_cancel(org=request.org, topup_id=topup.pk, actor=request.user)
            messages.info(request, "Test payment cancelled: nothing was added.")
            return redirect("ledger:topup")
        try:
            testpay_complete(org=request.org, topup_id=topup.pk)
        except ValueError as exc:
            messages.error(request, str(exc))
            return redirect("ledger:topup")
        messages.success(
            request,
            f"Test payment done: {money(topup.amount, topup.currency)} added to your "
            f"{wallet_name(topup.currency)} wallet.",
        )
        return redirect("ledger:topup")
    return render(
        request,
        "ledger/topup_test_pay.html",
        {
            "title": "Test payment",
            "topup": topup,
            "paid": topup.status == TopUpStatus.PAID,
            "cancelled": topup.status == TopUpStatus.CANCELLED,
        },
    )


@org_required
def topup_receipt(request, pk: int):
    """A printable receipt of one paid top-up (organization, amount, method, reference)."""
    topup = next((t for t in topups_with_numbers(request.org) if t.pk == pk), None)
    if topup is None or topup.status != TopUpStatus.PAID:
        raise Http404("No such receipt.")
    return render(
        request,
        "ledger/topup_receipt.html",
        {"title": f"Receipt {topup.receipt_number}", "topup": topup, "org": request.org},
    )


@require_POST
@org_required(Role.ADMIN)
def topup_redeem(request):
    form = RedeemForm(request.POST)
    if not form.is_valid():
        return _page(request, redeem_form=form, status=400)
    try:
        txn = redemption_redeem(org=request.org, code=form.cleaned_data["code"], actor=request.user)
    except LedgerError as exc:
        form.add_error("code", str(exc))
        return _page(request, redeem_form=form, status=400)
    topup = txn.topup
    messages.success(
        request,
        f"Code redeemed: {money(topup.amount, topup.currency)} added to your "
        f"{wallet_name(topup.currency)} wallet.",
    )
    return redirect("ledger:topup")


@require_POST
@org_required(Role.ADMIN)
def topup_alert_save(request):
    currency = request.POST.get("currency") if request.POST.get("currency") == "RMB" else "CREDIT"
    form = AlertForm(request.POST, currency=currency)
    if not form.is_valid():
        messages.error(request, "Alert not saved. " + form_errors_sentence(form))
        return redirect("ledger:topup")
    try:
        wallet_alert_set(
            org=request.org,
            currency=currency,
            threshold=form.cleaned_data["threshold"],
            webhook_url=form.cleaned_data["webhook_url"],
            email=form.cleaned_data["email"],
            actor=request.user,
        )
    except LedgerError as exc:
        messages.error(request, f"Alert not saved. {exc}")
        return redirect("ledger:topup")
    threshold = form.cleaned_data["threshold"]
    messages.success(
        request,
        f"{wallet_name(currency)} alert set under {money(threshold, currency)}."
        if threshold
        else f"{wallet_name(currency)} alert turned off.",
    )
    return redirect("ledger:topup")


@require_POST
@org_required(Role.ADMIN)
def topup_auto_save(request):
    form = AutoTopupForm(request.POST, test_provider=testpay_enabled())
    if not form.is_valid():
        messages.error(request, "Auto top-up not saved. " + form_errors_sentence(form))
        return redirect("ledger:topup")
    data = form.cleaned_data
    try:
        auto_topup_set(
            org=request.org,
            enabled=data["enabled"],
            threshold=data["threshold"],
            amount=data["amount"],
            test_card=data.get("test_card") or "",
            actor=request.user,
        )
    except LedgerError as exc:
        messages.error(request, f"Auto top-up not saved. {exc}")
        return redirect("ledger:topup")
    if data["enabled"]:
        messages.success(
            request,
            f"Auto top-up on: {money(data['amount'], 'CREDIT')} when Credit falls under "
            f"{money(data['threshold'], 'CREDIT')}.",
        )
    else:
        messages.success(request, "Auto top-up turned off.")
    return redirect("ledger:topup")


@csrf_exempt
@require_POST
def stripe_webhook(request):
    """Stripe's deliveries; 400 for anything not signed by our webhook secret, never a 500."""
    try:
        outcome = stripe_webhook_handle(
            payload=request.body, sig_header=request.headers.get("Stripe-Signature")
        )
    except WebhookRejected as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain")
    except ReversalTooEarly as exc:  # a refund before its payment's credit: Stripe retries
        return HttpResponse(str(exc), status=409, content_type="text/plain")
    return HttpResponse(outcome, content_type="text/plain")
