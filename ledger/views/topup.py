"""Top up: card payment for Credit (Stripe Checkout, or the labelled test provider under DEBUG),
redemption codes, and the history; plus the Stripe webhook endpoint."""

from __future__ import annotations

import logging
from decimal import Decimal

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
from ledger.services.redemptions import redemption_redeem
from ledger.services.reversals import ReversalTooEarly
from ledger.services.topups import (
    WebhookRejected,
    card_topup_available,
    checkout_start,
    stripe_configured,
    stripe_webhook_handle,
    testpay_complete,
    testpay_enabled,
    testpay_start,
)
from ledger.templatetags.money import money

logger = logging.getLogger(__name__)


class CheckoutForm(forms.Form):
    amount = forms.DecimalField(
        label="Amount",
        min_value=Decimal("0.50"),
        max_digits=12,
        decimal_places=2,
        help_text="In USD; credited to your Credit wallet.",
    )


class RedeemForm(forms.Form):
    code = forms.CharField(label="Code", max_length=40)


def _page(request, *, checkout_form=None, redeem_form=None, status=200):
    org = request.org
    can_top_up = request.membership.has_role(Role.ADMIN)
    return render(
        request,
        "ledger/topup.html",
        {
            "title": "Top up",
            "wallets": Account.objects.for_org(org)
            .filter(kind=AccountKind.WALLET)
            .order_by("currency"),
            "topups": TopUp.objects.for_org(org)
            .select_related("created_by")
            .order_by("-created_at", "-pk")[:100],
            "can_top_up": can_top_up,
            "card_available": card_topup_available(),
            "test_provider": testpay_enabled(),
            "checkout_form": checkout_form or CheckoutForm(),
            "redeem_form": redeem_form or RedeemForm(),
        },
        status=status,
    )


@org_required
def topup_page(request):
    if request.GET.get("paid"):
        messages.info(request, "Thank you: your Credit appears once the payment is confirmed.")
    return _page(request)


@require_POST
@org_required(Role.ADMIN)
def topup_checkout(request):
    form = CheckoutForm(request.POST)
    if not card_topup_available():
        messages.error(request, "Card top-up is unavailable.")
        return redirect("ledger:topup")
    if not form.is_valid():
        return _page(request, checkout_form=form, status=400)
    try:
        if stripe_configured():
            page = request.build_absolute_uri(reverse("ledger:topup"))
            _, url = checkout_start(
                org=request.org,
                amount=form.cleaned_data["amount"],
                actor=request.user,
                success_url=page + "?paid=1&session_id={CHECKOUT_SESSION_ID}",
                cancel_url=page,
            )
            return redirect(url)
        topup = testpay_start(
            org=request.org, amount=form.cleaned_data["amount"], actor=request.user
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
        testpay_complete(org=request.org, topup_id=topup.pk)
        messages.success(request, f"Test payment done: {money(topup.amount)} Credit added.")
        return redirect("ledger:topup")
    return render(
        request,
        "ledger/topup_test_pay.html",
        {"title": "Test payment", "topup": topup, "paid": topup.status == TopUpStatus.PAID},
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
        request, f"Code redeemed: {topup.amount.normalize():f} {topup.currency} added."
    )
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
