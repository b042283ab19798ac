"""Low-balance alerts per wallet and auto top-up of Credit by a saved card.

The owner sets, per wallet, a threshold under which we email the organization's owners and
admins and, optionally, POST a signed JSON event to their webhook; the alert fires once per
crossing and re-arms when the wallet is back above the threshold. For Credit, auto top-up
charges the saved card off-session (Stripe; the test provider in development) once the
available balance falls under its threshold; a failure is kept on the page and alerted, and
is retried at most once per AUTO_TOPUP_RETRY.

The beat sweep (`ledger.tasks.wallets_watch`) calls `wallets_watch`; nothing here runs on the
request hot path.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import stripe
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Membership, Organization, Role
from ledger.errors import InvalidAmount
from ledger.models import Account, AccountKind, TopUp, TopUpProvider, TopUpStatus, WalletWatch
from ledger.money import Currency, money_format, to_money, wallet_name
from ledger.services.topups import (
    checkout_amount_validate,
    currency_validate,
    stripe_configured,
    testpay_enabled,
    topup_settle,
)

logger = logging.getLogger(__name__)

AUTO_TOPUP_RETRY = timedelta(hours=1)
TEST_CARD_OK = "test_card"  # the test provider's saved card
TEST_CARD_DECLINED = "test_card_declined"  # ... and one that is declined, to see failures


def watch_of(*, org: Organization, currency: str) -> WalletWatch:
    """The wallet's settings (an unsaved default when none were set)."""
    currency = currency_validate(currency)
    found = WalletWatch.objects.for_org(org).filter(currency=currency).first()
    return found or WalletWatch(org=org, currency=currency)


def _watch_for_update(org: Organization, currency: str) -> WalletWatch:
    watch, _ = WalletWatch.objects.select_for_update().get_or_create(org=org, currency=currency)
    return watch


def wallet_alert_set(
    *,
    org: Organization,
    currency: str,
    threshold: Decimal | None,
    webhook_url: str = "",
    email: bool = True,
    actor: Any | None = None,
) -> WalletWatch:
    """Set (or clear, with None) the low-balance alert of one wallet."""
    currency = currency_validate(currency)
    if threshold is not None:
        threshold = to_money(threshold)
        if threshold <= 0:
            raise InvalidAmount("The alert threshold must be more than zero, or empty for none.")
    with transaction.atomic():
        watch = _watch_for_update(org, currency)
        watch.alert_threshold = threshold
        watch.alert_email = email
        watch.webhook_url = webhook_url.strip()
        if watch.webhook_url and not watch.webhook_secret:
            watch.webhook_secret = "whsec_" + secrets.token_hex(24)
        watch.alerted_at = None  # re-armed: the next check decides afresh
        watch.save()
        audit_record(
            org=org,
            actor=actor,
            action="wallet.alert_set",
            target=watch,
            changes={
                "currency": currency,
                "threshold": None if threshold is None else str(threshold),
                "webhook": bool(watch.webhook_url),
                "email": email,
            },
        )
    return watch


def auto_topup_set(
    *,
    org: Organization,
    enabled: bool,
    threshold: Decimal | None,
    amount: Decimal | None,
    test_card: str = "",
    actor: Any | None = None,
) -> WalletWatch:
    """Turn auto top-up of Credit on (amount and threshold) or off."""
    if enabled:
        if threshold is None or amount is None:
            raise InvalidAmount("Give both the amount to add and the balance that triggers it.")
        amount = checkout_amount_validate(amount, Currency.CREDIT)
        threshold = to_money(threshold)
        if threshold <= 0:
            raise InvalidAmount("The trigger balance must be more than zero.")
    with transaction.atomic():
        watch = _watch_for_update(org, Currency.CREDIT)
        watch.auto_topup_enabled = enabled
        if enabled:
            watch.auto_topup_threshold = threshold
            watch.auto_topup_amount = amount
            watch.auto_topup_last_error = ""
            watch.auto_topup_last_at = None
        if testpay_enabled() and test_card in (TEST_CARD_OK, TEST_CARD_DECLINED):
            watch.stripe_customer_id = test_card  # the test provider's "saved card"
        watch.save()
        audit_record(
            org=org,
            actor=actor,
            action="wallet.auto_topup_set",
            target=watch,
            changes={
                "enabled": enabled,
                "threshold": None if threshold is None else str(threshold),
                "amount": None if amount is None else str(amount),
            },
        )
    return watch


def saved_card_remember(*, org_id: int, customer_id: str) -> None:
    """A card Checkout saved for later (the Stripe customer) becomes the auto top-up card."""
    if not customer_id:
        return
    with transaction.atomic():
        watch, _ = WalletWatch.objects.select_for_update().get_or_create(
            org_id=org_id, currency=Currency.CREDIT
        )
        if watch.stripe_customer_id != customer_id:
            watch.stripe_customer_id = customer_id
            watch.save(update_fields=["stripe_customer_id", "updated_at"])


def _available(org_id: int, currency: str) -> Decimal:
    wallet = Account.objects.get(org_id=org_id, currency=currency, kind=AccountKind.WALLET)
    return wallet.posted - wallet.held


def webhook_signature(*, secret: str, body: bytes, timestamp: int | None = None) -> str:
    """`t=...,v1=HMAC-SHA256(secret, "t.body")`, the same scheme as Stripe's signatures."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def _recipients(org: Organization) -> list[str]:
    return list(
        Membership.objects.for_org(org)
        .filter(role__in=[Role.OWNER, Role.ADMIN])
        .values_list("user__email", flat=True)
    )


def _notify(*, watch: WalletWatch, event: str, subject: str, text: str, data: dict) -> None:
    """Email the owners and admins, and POST the signed event to the webhook if set."""
    org = watch.org
    if watch.alert_email or event.startswith("auto_topup"):
        to = _recipients(org)
        if to:
            send_mail(f"[tokenforge] {subject}", text, settings.DEFAULT_FROM_EMAIL, to)
    if watch.webhook_url:
        body = json.dumps(
            {"type": event, "organization": org.name, "wallet": watch.currency, **data},
            sort_keys=True,
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Tokenforge-Signature": webhook_signature(secret=watch.webhook_secret, body=body),
        }
        try:
            httpx.post(watch.webhook_url, content=body, headers=headers, timeout=5)
        except httpx.HTTPError as exc:  # an unreachable webhook never stops the sweep
            logger.warning("low-balance webhook for org %s failed: %s", org.pk, type(exc).__name__)


def _alert_check(watch: WalletWatch, available: Decimal) -> bool:
    if watch.alert_threshold is None:
        return False
    if available >= watch.alert_threshold:
        if watch.alerted_at is not None:
            WalletWatch.objects.filter(pk=watch.pk).update(alerted_at=None)  # re-arm
        return False
    claimed = WalletWatch.objects.filter(pk=watch.pk, alerted_at__isnull=True).update(
        alerted_at=timezone.now()
    )
    if not claimed:
        return False  # already alerted for this crossing (or another sweep just did)
    name, cur = wallet_name(watch.currency), watch.currency
    _notify(
        watch=watch,
        event="wallet.low_balance",
        subject=f"{watch.org.name}: {name} balance is low ({money_format(available, cur, total=True)})",
        text=(
            f"The {name} wallet of {watch.org.name} has {money_format(available, cur)} "
            f"available, under the {money_format(watch.alert_threshold, cur)} you set. "
            "Top it up on the Top up page so requests keep running."
        ),
        data={"available": str(available), "threshold": str(watch.alert_threshold)},
    )
    return True


class AutoTopupFailed(Exception):
    pass


def _charge_saved_card(*, watch: WalletWatch, topup: TopUp) -> str:
    """Charge the saved card for `topup`; returns the credit's reference. Raises
    AutoTopupFailed with a sentence for the customer."""
    customer = watch.stripe_customer_id
    if stripe_configured():
        if not customer or customer.startswith("test_"):
            raise AutoTopupFailed(
                "No saved card: make one card top-up on this page first; its card is saved."
            )
        try:
            methods = stripe.PaymentMethod.list(
                api_key=settings.STRIPE_SECRET_KEY, customer=customer, type="card"
            )
            if not methods.data:
                raise AutoTopupFailed("The saved card is gone: make a card top-up to save one.")
            intent = stripe.PaymentIntent.create(
                api_key=settings.STRIPE_SECRET_KEY,
                amount=int((topup.amount * 100).to_integral_value()),
                currency="usd",
                customer=customer,
                payment_method=methods.data[0].id,
                off_session=True,
                confirm=True,
                metadata={"org_id": str(topup.org_id), "topup_id": str(topup.pk)},
                idempotency_key=f"auto-topup-{topup.pk}",
            )
        except stripe.CardError as exc:
            raise AutoTopupFailed(
                f"The card was declined ({exc.user_message or exc.code or 'card_error'})."
            ) from None
        except stripe.StripeError as exc:
            raise AutoTopupFailed(
                f"The payment provider failed ({type(exc).__name__}); we retry within the hour."
            ) from None
        if intent.status != "succeeded":
            raise AutoTopupFailed(f"The card payment needs attention (status {intent.status}).")
        TopUp.objects.filter(pk=topup.pk).update(external_id=intent.id)
        return f"stripe:{intent.id}"
    if testpay_enabled():
        if customer == TEST_CARD_DECLINED:
            raise AutoTopupFailed("The card was declined (test card set to decline).")
        return f"test:{topup.pk}"
    raise AutoTopupFailed("Card payments are not configured.")


def _auto_topup_check(watch: WalletWatch, available: Decimal, now) -> str:
    if not (watch.auto_topup_enabled and watch.currency == Currency.CREDIT):
        return ""
    if watch.auto_topup_threshold is None or watch.auto_topup_amount is None:
        return ""
    if available >= watch.auto_topup_threshold:
        return ""
    with transaction.atomic():
        # One charge per crossing, whoever else sweeps: claim by moving last_at forward.
        fresh = WalletWatch.objects.select_for_update().get(pk=watch.pk)
        if fresh.auto_topup_last_at and now - fresh.auto_topup_last_at < AUTO_TOPUP_RETRY:
            return "waiting"
        fresh.auto_topup_last_at = now
        fresh.save(update_fields=["auto_topup_last_at", "updated_at"])
    topup = TopUp.objects.create(
        org=watch.org,
        currency=Currency.CREDIT,
        amount=watch.auto_topup_amount,
        provider=TopUpProvider.STRIPE if stripe_configured() else TopUpProvider.TEST,
        status=TopUpStatus.PENDING,
    )
    try:
        reference = _charge_saved_card(watch=watch, topup=topup)
    except AutoTopupFailed as exc:
        TopUp.objects.filter(pk=topup.pk).update(status=TopUpStatus.FAILED)
        WalletWatch.objects.filter(pk=watch.pk).update(auto_topup_last_error=str(exc)[:500])
        _notify(
            watch=watch,
            event="auto_topup.failed",
            subject=f"{watch.org.name}: auto top-up of Credit failed",
            text=(
                f"We tried to add {money_format(topup.amount, 'CREDIT')} to the Credit (USD) "
                f"wallet of {watch.org.name}: {exc} Top up by hand on the Top up page."
            ),
            data={"amount": str(topup.amount), "error": str(exc)},
        )
        return "failed"
    topup_settle(topup_id=topup.pk, reference=reference, amount=topup.amount)
    WalletWatch.objects.filter(pk=watch.pk).update(
        auto_topup_last_error="", auto_topup_last_at=None
    )
    return "charged"


def wallets_watch(*, org: Organization | None = None) -> dict[str, int]:
    """Check every wallet with an alert or auto top-up set; returns what happened."""
    now = timezone.now()
    watches = WalletWatch.objects.select_related("org").filter(
        Q(alert_threshold__isnull=False) | Q(auto_topup_enabled=True)
    )
    if org is not None:
        watches = watches.filter(org=org)
    outcome = {"alerts": 0, "charged": 0, "failed": 0}
    for watch in watches:
        available = _available(watch.org_id, watch.currency)
        result = _auto_topup_check(watch, available, now)
        if result in ("charged", "failed"):
            outcome[result] += 1
        if result == "charged":
            available = _available(watch.org_id, watch.currency)
        if _alert_check(watch, available):
            outcome["alerts"] += 1
    return outcome
