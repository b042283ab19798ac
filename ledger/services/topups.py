"""Top-ups: operator grants, Stripe Checkout (Credit by card in USD; RMB with Alipay and
WeChat Pay in CNY), and the DEBUG-only test provider for both wallets.

Every credit goes through `wallet_credit`, i.e. `transaction_post` with a deterministic reference
(`grant:REF`, `stripe:<checkout session id>`, `test:<topup id>`), so whatever the number, order
or concurrency of calls, the unique reference lets exactly one credit through.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal, InvalidOperation
from typing import Any

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction

from accounts.audit import audit_record
from accounts.models import Organization
from ledger.errors import InvalidAmount
from ledger.models import (
    AccountKind,
    TopUp,
    TopUpProvider,
    TopUpStatus,
    Transaction,
    TransactionKind,
    WebhookEvent,
)
from ledger.money import (
    MONEY_PLACES,
    WALLET_ISO,
    Currency,
    money_format,
    to_money,
    wallet_name,
)
from ledger.services.postings import system_account, transaction_post, wallet_for
from ledger.services.reversals import STRIPE_REVERSAL_EVENTS, stripe_reversal_handle

logger = logging.getLogger(__name__)

# A sanity bound on one top-up; larger amounts are almost certainly a typo.
TOPUP_MAX = Decimal("1000000")
# Stripe charges in cents (fen for CNY) with a minimum per currency.
CHECKOUT_MIN = Decimal("0.50")
CHECKOUT_MINIMUMS = {"CREDIT": CHECKOUT_MIN, "RMB": Decimal("4.00")}
CHECKOUT_MAXIMUMS = {"CREDIT": Decimal("10000"), "RMB": Decimal("70000")}
# How each wallet is paid through Stripe Checkout: Credit by card, RMB with Alipay / WeChat Pay.
CHECKOUT_METHODS = {"CREDIT": ["card"], "RMB": ["alipay", "wechat_pay"]}
STRIPE_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")


def currency_validate(currency: Any) -> str:
    """The currency as stored (CREDIT or RMB); ValueError otherwise."""
    value = str(currency or "").strip().upper()
    if value not in Currency.values:
        raise ValueError(f"Unknown currency {currency!r}: use one of {', '.join(Currency.values)}.")
    return value


def amount_validate(
    amount: Any, *, places: int = MONEY_PLACES, maximum: Decimal = TOPUP_MAX
) -> Decimal:
    """A positive, finite Decimal with at most `places` decimals and at most `maximum`."""
    if isinstance(amount, float):
        raise InvalidAmount("Amounts must be decimals, not floats.")
    try:
        value = amount if isinstance(amount, Decimal) else Decimal(str(amount).strip())
    except (InvalidOperation, ValueError):
        raise InvalidAmount(f"{amount!r} is not a number.") from None
    if not value.is_finite():
        raise InvalidAmount("The amount must be a finite number.")
    if value <= 0:
        raise InvalidAmount("The amount must be greater than zero.")
    if value.as_tuple().exponent < -places:
        raise InvalidAmount(f"The amount has more than {places} decimal places.")
    if value > maximum:
        raise InvalidAmount(f"The amount must be at most {maximum}.")
    return to_money(value)


def wallet_credit(
    *,
    org: Organization,
    currency: str,
    amount: Decimal,
    reference: str,
    kind: str,
    source_kind: str,
    actor: Any | None = None,
    reason: str = "",
) -> tuple[Transaction, bool]:
    """Move `amount` from a system account into the org's wallet, once per reference."""
    wallet = wallet_for(org=org, currency=currency)
    source = system_account(currency=currency, kind=source_kind)
    return transaction_post(
        org=org,
        kind=kind,
        legs=[(wallet, amount), (source, -amount)],
        reference=reference,
        reason=reason,
        created_by=actor,
    )


# --- operator grants ---------------------------------------------------------------------


def grant_reference(reference: str) -> str:
    return f"grant:{reference}"


def topup_grant(
    *,
    org: Organization,
    currency: str,
    amount: Decimal,
    reference: str,
    actor: Any | None = None,
    reason: str = "",
) -> Transaction:
    """Credit an org's wallet from the grants account; idempotent by `reference`.

    A second call with the same reference returns the first transaction (nothing moves);
    the same reference with a different org, currency or amount is refused, like Stripe's
    idempotency keys, because it is almost certainly a mistake.
    """
    currency = currency_validate(currency)
    amount = amount_validate(amount)
    reference = str(reference or "").strip()
    if not reference or len(reference) > 180:
        raise ValueError("A reference of 1 to 180 characters is required.")
    ref = grant_reference(reference)
    with transaction.atomic():
        txn, created = wallet_credit(
            org=org,
            currency=currency,
            amount=amount,
            reference=ref,
            kind=TransactionKind.GRANT,
            source_kind=AccountKind.GRANTS,
            actor=actor,
            reason=reason or f"Operator grant {reference}",
        )
        if not created:
            leg = txn.postings.filter(account__kind=AccountKind.WALLET).first()
            if (
                txn.kind != TransactionKind.GRANT
                or txn.org_id != org.pk
                or leg is None
                or leg.currency != currency
                or leg.amount != amount
            ):
                raise ValueError(f"Reference {reference!r} was already used for a different grant.")
            return txn
        TopUp.objects.create(
            org=org,
            currency=currency,
            amount=amount,
            provider=TopUpProvider.OPERATOR,
            status=TopUpStatus.PAID,
            external_id=ref,
            transaction=txn,
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        audit_record(
            org=org,
            actor=actor,
            action="topup.grant",
            target=txn,
            changes={"currency": currency, "amount": str(amount), "reference": reference},
        )
    return txn


def grant_exists(*, reference: str) -> bool:
    return Transaction.objects.filter(reference=grant_reference(reference.strip())).exists()


# --- Stripe Checkout and the test provider -----------------------------------------------


def stripe_configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY and settings.STRIPE_WEBHOOK_SECRET)


def testpay_enabled() -> bool:
    """The labelled test provider stands in only when Stripe is absent and DEBUG is on."""
    return not stripe_configured() and bool(settings.DEBUG)


def card_topup_available() -> bool:
    return stripe_configured() or testpay_enabled()


def checkout_amount_validate(amount: Any, currency: str = Currency.CREDIT) -> Decimal:
    currency = currency_validate(currency)
    minimum, maximum = CHECKOUT_MINIMUMS[currency], CHECKOUT_MAXIMUMS[currency]
    value = amount_validate(amount, places=2, maximum=maximum * 100)
    if value < minimum or value > maximum:
        raise InvalidAmount(
            f"A {wallet_name(currency)} top-up must be between {money_format(minimum, currency)} "
            f"and {money_format(maximum, currency, total=True)}."
        )
    return value


def topup_method(topup: TopUp) -> str:
    """How it was paid, for the history and the receipt."""
    if topup.provider == TopUpProvider.STRIPE:
        return (
            "Card (Stripe)" if topup.currency == Currency.CREDIT else "Alipay / WeChat Pay (Stripe)"
        )
    if topup.provider == TopUpProvider.OPERATOR:
        return "Granted by tokenforge"
    return topup.get_provider_display()


def checkout_start(
    *,
    org: Organization,
    amount: Any,
    actor: Any | None,
    success_url: str,
    cancel_url: str,
    currency: str = Currency.CREDIT,
) -> tuple[TopUp, str]:
    """Create a pending TopUp and its Stripe Checkout Session; returns (topup, url).

    Credit is paid by card in USD; RMB with Alipay or WeChat Pay in CNY.

    The amount credited later is the session's `amount_total`, never anything the browser
    sends back.
    """
    if not stripe_configured():
        raise ValueError("Card payments are not configured.")
    currency = currency_validate(currency)
    value = checkout_amount_validate(amount, currency)
    topup = TopUp.objects.create(
        org=org,
        currency=currency,
        amount=value,
        provider=TopUpProvider.STRIPE,
        status=TopUpStatus.PENDING,
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    cents = int((value * 100).to_integral_value())
    try:
        session = _checkout_session_create(
            org=org,
            topup=topup,
            cents=cents,
            success_url=success_url,
            # `{TOPUP_ID}`: the cancel page marks this top-up cancelled (ours, not Stripe's id).
            cancel_url=cancel_url.replace("{TOPUP_ID}", str(topup.pk)),
        )
    except Exception:
        TopUp.objects.filter(pk=topup.pk).update(status=TopUpStatus.FAILED)
        raise
    TopUp.objects.filter(pk=topup.pk).update(external_id=session.id)
    topup.external_id = session.id
    return topup, session.url


def _checkout_session_create(*, org, topup, cents, success_url, cancel_url):
    extra: dict[str, Any] = {}
    # Copied onto the PaymentIntent and its charge: refunds and disputes carry it.
    intent_data: dict[str, Any] = {"metadata": {"org_id": str(org.pk), "topup_id": str(topup.pk)}}
    if topup.currency == Currency.CREDIT:
        # Save the card for auto top-up (charged off-session later, only if the owner turns
        # auto top-up on).
        extra["customer_creation"] = "always"
        intent_data["setup_future_usage"] = "off_session"
    if topup.currency == Currency.RMB:
        extra["payment_method_types"] = CHECKOUT_METHODS[Currency.RMB]
        extra["payment_method_options"] = {"wechat_pay": {"client": "web"}}
    return stripe.checkout.Session.create(
        api_key=settings.STRIPE_SECRET_KEY,
        mode="payment",
        line_items=[
            {
                "price_data": {
                    "currency": WALLET_ISO[topup.currency],
                    "unit_amount": cents,
                    "product_data": {"name": f"tokenforge {wallet_name(topup.currency)}"},
                },
                "quantity": 1,
            }
        ],
        **extra,
        client_reference_id=str(topup.pk),
        metadata={"org_id": str(org.pk), "topup_id": str(topup.pk)},
        payment_intent_data=intent_data,
        success_url=success_url,
        cancel_url=cancel_url,
    )


def topup_settle(*, topup_id: int, reference: str, amount: Decimal) -> tuple[Transaction, bool]:
    """Credit a pending TopUp once; the TopUp row lock serialises racing settlements."""
    with transaction.atomic():
        topup = TopUp.objects.select_for_update().select_related("org").get(pk=topup_id)
        txn, created = wallet_credit(
            org=topup.org,
            currency=topup.currency,
            amount=amount,
            reference=reference,
            kind=TransactionKind.TOPUP,
            source_kind=AccountKind.PAYMENTS,
            actor=topup.created_by,
            reason=f"{topup_method(topup)} top-up",
        )
        if topup.transaction_id is None:
            TopUp.objects.filter(pk=topup.pk).update(
                status=TopUpStatus.PAID, transaction=txn, amount=amount
            )
        if created:
            audit_record(
                org=topup.org,
                actor=topup.created_by,
                action="topup.paid",
                target=txn,
                changes={
                    "provider": topup.provider,
                    "currency": topup.currency,
                    "amount": str(amount),
                    "topup": topup.pk,
                },
            )
    return txn, created


def testpay_start(
    *, org: Organization, amount: Any, actor: Any | None, currency: str = Currency.CREDIT
) -> TopUp:
    if not testpay_enabled():
        raise ValueError("The test payment provider is only available when DEBUG is on.")
    currency = currency_validate(currency)
    return TopUp.objects.create(
        org=org,
        currency=currency,
        amount=checkout_amount_validate(amount, currency),
        provider=TopUpProvider.TEST,
        status=TopUpStatus.PENDING,
        created_by=actor if getattr(actor, "pk", None) else None,
    )


def testpay_complete(*, org: Organization, topup_id: int) -> Transaction:
    """The test provider's "payment succeeded": the same idempotent credit path as Stripe."""
    if not testpay_enabled():
        raise ValueError("The test payment provider is only available when DEBUG is on.")
    topup = TopUp.objects.for_org(org).get(pk=topup_id, provider=TopUpProvider.TEST)
    if topup.status == TopUpStatus.CANCELLED:
        raise ValueError("This test payment was cancelled; start a new top-up.")
    txn, _ = topup_settle(topup_id=topup.pk, reference=f"test:{topup.pk}", amount=topup.amount)
    return txn


def topup_cancel(*, org: Organization, topup_id: int, actor: Any | None = None) -> bool:
    """The payer cancelled a pending payment: mark it cancelled (never credited). Only a
    pending top-up changes; a paid one stays paid. Returns whether it changed."""
    changed = (
        TopUp.objects.for_org(org)
        .filter(
            pk=topup_id,
            status=TopUpStatus.PENDING,
            provider__in=[TopUpProvider.TEST, TopUpProvider.STRIPE],
        )
        .update(status=TopUpStatus.CANCELLED)
    )
    if changed:
        audit_record(
            org=org,
            actor=actor,
            action="topup.cancel",
            target=TopUp.objects.get(pk=topup_id),
            changes={},
        )
    return bool(changed)


class WebhookRejected(Exception):
    """The delivery is not a valid Stripe event (bad signature or payload): answer 400."""


def stripe_webhook_handle(*, payload: bytes, sig_header: str | None) -> str:
    """Verify and apply one Stripe delivery; returns what happened (for logs and tests).

    Refunds and disputes go to `ledger.services.reversals`. The WebhookEvent insert and the
    credit share one DB transaction: a failed credit leaves
    no claim behind, so Stripe's retry can try again. The credit's reference comes from the
    Checkout Session id, so `completed` and `async_payment_succeeded` for the same payment,
    in any order and at once, credit once.
    """
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise WebhookRejected("Stripe webhooks are not configured.")
    if not sig_header:
        raise WebhookRejected("Missing Stripe-Signature header.")
    try:
        stripe.Webhook.construct_event(payload, sig_header, secret)
        event = json.loads(payload)
    except (ValueError, stripe.SignatureVerificationError) as exc:
        raise WebhookRejected(f"Invalid Stripe webhook: {exc.__class__.__name__}") from None
    event_type = event.get("type", "")
    event_id = event.get("id", "")
    if event_type in STRIPE_REVERSAL_EVENTS:
        return stripe_reversal_handle(event=event)
    session = (event.get("data") or {}).get("object") or {}
    if event_type == "checkout.session.expired":
        # The payer never paid (closed or abandoned Checkout): the top-up shows as cancelled.
        expired = _topup_for_session(session)
        if expired is not None:
            TopUp.objects.filter(pk=expired.pk, status=TopUpStatus.PENDING).update(
                status=TopUpStatus.CANCELLED
            )
        return "expired"
    if event_type not in STRIPE_EVENTS:
        return "ignored"
    if event_type == "checkout.session.completed" and session.get("payment_status") != "paid":
        return "pending"  # async payment methods: wait for async_payment_succeeded
    topup = _topup_for_session(session)
    if topup is None:
        logger.warning("Stripe event %s: no top-up for session %s", event_id, session.get("id"))
        return "unknown"
    amount_total = session.get("amount_total")
    if not isinstance(amount_total, int) or amount_total <= 0:
        raise WebhookRejected("The session has no amount_total.")
    if str(session.get("currency", "")).lower() != WALLET_ISO[topup.currency]:
        raise WebhookRejected(
            f"A {WALLET_ISO[topup.currency].upper()} session credits the "
            f"{wallet_name(topup.currency)} wallet; this one is in {session.get('currency')!r}."
        )
    amount = to_money(Decimal(amount_total) / 100)
    with transaction.atomic():
        try:
            with transaction.atomic():
                WebhookEvent.objects.create(
                    provider="stripe", event_id=event_id, event_type=event_type
                )
        except IntegrityError:
            return "duplicate"
        _, created = topup_settle(
            topup_id=topup.pk, reference=f"stripe:{session['id']}", amount=amount
        )
        payment_intent = session.get("payment_intent")
        if isinstance(payment_intent, str) and payment_intent:
            # How a later refund or dispute of this payment finds the top-up.
            TopUp.objects.filter(pk=topup.pk, payment_intent="").update(
                payment_intent=payment_intent[:200]
            )
        if topup.currency == Currency.CREDIT and session.get("customer"):
            from ledger.services.wallet_watch import saved_card_remember

            saved_card_remember(org_id=topup.org_id, customer_id=str(session["customer"]))
    return "credited" if created else "already_credited"


def _topup_for_session(session: dict) -> TopUp | None:
    metadata = session.get("metadata") or {}
    topup_id = metadata.get("topup_id") or session.get("client_reference_id")
    topup = None
    if topup_id and str(topup_id).isdigit():
        topup = TopUp.objects.filter(pk=int(topup_id), provider=TopUpProvider.STRIPE).first()
    if topup is None and session.get("id"):
        topup = TopUp.objects.filter(external_id=session["id"]).first()
    if topup is None:
        return None
    if metadata.get("org_id") and str(topup.org_id) != str(metadata["org_id"]):
        return None
    if topup.external_id and session.get("id") and topup.external_id != session["id"]:
        return None
    return topup
