"""Card refunds and disputes (Stripe `charge.refunded`, `charge.dispute.created`,
`charge.dispute.closed`): the money a customer takes back leaves their wallet.

Without this, a customer could top up, spend, and charge back: the credit stayed. Each
reversal moves the amount out of the wallet down to zero (what is held for in-flight
requests stays) and books the rest on the receivable account, which the operator sees in
admin and is alerted about. Idempotent twice over: each Stripe event is claimed once
(`WebhookEvent`), and each money movement has a deterministic reference, so a refund's
running total (`amount_refunded`) or a dispute moves money once whatever the order or number
of deliveries. Nothing reverses more than the top-up credited.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from django.core.mail import mail_admins
from django.db import IntegrityError, transaction

from accounts.audit import audit_record
from ledger.models import (
    Account,
    AccountKind,
    PaymentReversal,
    ReversalKind,
    ReversalStatus,
    TopUp,
    TopUpProvider,
    TransactionKind,
    WebhookEvent,
)
from ledger.money import ZERO, to_money
from ledger.services.postings import system_account, transaction_post, wallet_for

logger = logging.getLogger("tokenforge.alerts")

REFUNDED = "charge.refunded"
DISPUTE_CREATED = "charge.dispute.created"
DISPUTE_CLOSED = "charge.dispute.closed"
STRIPE_REVERSAL_EVENTS = (REFUNDED, DISPUTE_CREATED, DISPUTE_CLOSED)
# Funds are not withdrawn for inquiries (`warning_*` statuses), only for real disputes.
INQUIRY_PREFIX = "warning_"


class ReversalTooEarly(Exception):
    """The refund or dispute names a card top-up whose payment is not credited yet: answer
    with an error so Stripe delivers it again later (it retries for days)."""


def stripe_reversal_handle(*, event: dict) -> str:
    """Apply one verified Stripe refund or dispute event; returns what happened."""
    event_type = event.get("type", "")
    event_id = str(event.get("id", ""))
    obj = (event.get("data") or {}).get("object") or {}
    charge_id = str(obj.get("id", "")) if event_type == REFUNDED else str(obj.get("charge", ""))
    topup = _topup_for_payment(
        payment_intent=obj.get("payment_intent"),
        metadata=obj.get("metadata") or {},
        charge_id=charge_id,
    )
    if topup is None:
        topup_id = str((obj.get("metadata") or {}).get("topup_id", ""))
        pending = topup_id.isdigit() and TopUp.objects.filter(
            pk=int(topup_id), provider=TopUpProvider.STRIPE, transaction__isnull=True
        )
        if pending and pending.exists():
            raise ReversalTooEarly(f"Top-up #{topup_id} is not credited yet; retry later.")
        logger.warning("Stripe %s %s: no card top-up matches it", event_type, event_id)
        return "unknown"
    if str(obj.get("currency", "")).lower() != "usd":
        logger.warning("Stripe %s %s: not in USD, nothing reversed", event_type, event_id)
        return "ignored"
    with transaction.atomic():
        try:
            with transaction.atomic():
                WebhookEvent.objects.create(
                    provider="stripe", event_id=event_id, event_type=event_type
                )
        except IntegrityError:
            return "duplicate"
        # One reversal of a top-up at a time: the cap (never more than it credited) holds.
        topup = TopUp.objects.select_for_update().select_related("org").get(pk=topup.pk)
        if event_type == REFUNDED:
            return payment_refund_record(
                topup=topup,
                charge_id=charge_id,
                refunded_cents=obj.get("amount_refunded"),
                event_id=event_id,
            )
        return payment_dispute_record(
            topup=topup,
            dispute_id=str(obj.get("id", "")),
            charge_id=charge_id,
            cents=obj.get("amount"),
            status=str(obj.get("status", "")),
            reason=str(obj.get("reason", "") or ""),
            event_id=event_id,
        )


def _topup_for_payment(*, payment_intent, metadata: dict, charge_id: str) -> TopUp | None:
    """The card top-up a charge paid: by the metadata Checkout copies onto the payment, by
    its PaymentIntent, or by an earlier reversal of the same charge."""
    stripe_topups = TopUp.objects.filter(provider=TopUpProvider.STRIPE, transaction__isnull=False)
    topup_id = str(metadata.get("topup_id", ""))
    if topup_id.isdigit():
        topup = stripe_topups.filter(pk=int(topup_id)).first()
        if topup is not None:
            return topup
    if isinstance(payment_intent, str) and payment_intent:
        topup = stripe_topups.filter(payment_intent=payment_intent).first()
        if topup is not None:
            return topup
    if charge_id:
        earlier = PaymentReversal.objects.filter(charge_id=charge_id).select_related("topup")
        if (row := earlier.first()) is not None:
            return row.topup
    return None


def _cents(value) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return to_money(Decimal(value) / 100)


def _reversible(*, topup: TopUp, exclude_pk: int | None = None) -> Decimal:
    """What is left of the top-up to take back (refunds and disputes never sum past it)."""
    taken = ZERO
    for row in PaymentReversal.objects.filter(topup=topup).exclude(pk=exclude_pk):
        taken += row.from_wallet + row.to_receivable
    return max(topup.amount - taken, ZERO)


def _take_back(
    *, row: PaymentReversal, amount: Decimal, reference: str, reason: str
) -> tuple[Decimal, Decimal]:
    """Move `amount` out of the wallet down to its available balance, the rest to the
    receivable account; the payments account gets it all. Returns (from_wallet, receivable)."""
    if amount <= 0:
        return ZERO, ZERO
    wallet = Account.objects.select_for_update().get(
        pk=wallet_for(org=row.org, currency=row.currency).pk
    )
    from_wallet = min(amount, max(wallet.posted - wallet.held, ZERO))
    receivable = amount - from_wallet
    legs = [(system_account(currency=row.currency, kind=AccountKind.PAYMENTS), amount)]
    if from_wallet > 0:
        legs.append((wallet, -from_wallet))
    if receivable > 0:
        legs.append(
            (system_account(currency=row.currency, kind=AccountKind.RECEIVABLE), -receivable)
        )
    _, created = transaction_post(
        org=row.org, kind=TransactionKind.CHARGEBACK, legs=legs, reference=reference, reason=reason
    )
    if not created:
        return ZERO, ZERO
    if receivable > 0:
        _alert(row=row, receivable=receivable)
    return from_wallet, receivable


def _alert(*, row: PaymentReversal, receivable: Decimal) -> None:
    subject = (
        f"[tokenforge] {row.get_kind_display()} {row.external_id}: {row.org.slug} owes "
        f"{receivable.normalize():f} {row.currency}"
    )
    body = (
        f"Stripe took back {row.amount.normalize():f} {row.currency} of top-up #{row.topup_id} "
        f"from {row.org.name} ({row.get_kind_display().lower()} {row.external_id}); their wallet "
        f"held less, so {receivable.normalize():f} {row.currency} is on the receivable account."
    )
    logger.warning("%s", subject)
    transaction.on_commit(lambda: mail_admins(subject, body, fail_silently=True))


def payment_refund_record(*, topup: TopUp, charge_id: str, refunded_cents, event_id: str) -> str:
    """Bring the wallet in line with Stripe's running refund total for the charge."""
    total = _cents(refunded_cents)
    if total is None or not charge_id:
        logger.warning("Stripe refund event %s has no usable amount_refunded", event_id)
        return "ignored"
    row, _ = PaymentReversal.objects.select_for_update().get_or_create(
        kind=ReversalKind.REFUND,
        external_id=charge_id,
        defaults={
            "org": topup.org,
            "topup": topup,
            "charge_id": charge_id,
            "status": ReversalStatus.REFUNDED,
            "currency": topup.currency,
            "amount": ZERO,
            "from_wallet": ZERO,
            "to_receivable": ZERO,
        },
    )
    done = row.from_wallet + row.to_receivable
    wanted = min(total, done + _reversible(topup=topup, exclude_pk=row.pk))
    delta = wanted - done
    row.amount = max(row.amount, total)
    row.last_event_id = event_id
    if delta > 0:
        cents = int((wanted * 100).to_integral_value())
        from_wallet, receivable = _take_back(
            row=row,
            amount=delta,
            reference=f"stripe-refund:{charge_id}:{cents}",
            reason=f"Card payment refunded at Stripe (top-up #{topup.pk}, charge {charge_id})",
        )
        row.from_wallet += from_wallet
        row.to_receivable += receivable
    row.save()
    audit_record(
        org=topup.org,
        actor=None,
        action="topup.refunded",
        target=row,
        changes={
            "charge": charge_id,
            "refunded_total": str(total),
            "from_wallet": str(row.from_wallet),
            "receivable": str(row.to_receivable),
        },
    )
    return "refunded" if delta > 0 else "already_refunded"


def payment_dispute_record(
    *,
    topup: TopUp,
    dispute_id: str,
    charge_id: str,
    cents,
    status: str,
    reason: str,
    event_id: str,
) -> str:
    """Open (funds withdrawn: take them back from the wallet), won (reinstate exactly what
    was taken), lost (the withdrawal stands) or an inquiry (nothing moves)."""
    amount = _cents(cents)
    if amount is None or not dispute_id:
        logger.warning("Stripe dispute event %s has no usable amount or id", event_id)
        return "ignored"
    inquiry = status.startswith(INQUIRY_PREFIX)
    row, _ = PaymentReversal.objects.select_for_update().get_or_create(
        kind=ReversalKind.DISPUTE,
        external_id=dispute_id,
        defaults={
            "org": topup.org,
            "topup": topup,
            "charge_id": charge_id,
            "status": ReversalStatus.INQUIRY if inquiry else ReversalStatus.OPEN,
            "currency": topup.currency,
            "amount": amount,
            "from_wallet": ZERO,
            "to_receivable": ZERO,
            "reason": reason[:100],
        },
    )
    row.last_event_id = event_id
    if status == "won":
        outcome = _dispute_reinstate(row=row, dispute_id=dispute_id)
    elif inquiry:
        if row.status == ReversalStatus.INQUIRY and status == "warning_closed":
            row.status = ReversalStatus.CLOSED
        outcome = "inquiry_recorded"
    elif row.status == ReversalStatus.WON:
        outcome = "dispute_won"  # a late `created` after the win: nothing to take again
    else:
        # A real dispute: Stripe withdrew the funds when it opened (also when its `closed`
        # arrives first). The reference makes the withdrawal happen once.
        take = min(amount, _reversible(topup=topup, exclude_pk=row.pk))
        from_wallet, receivable = _take_back(
            row=row,
            amount=take,
            reference=f"stripe-dispute:{dispute_id}",
            reason=f"Card payment disputed at Stripe (top-up #{topup.pk}, dispute {dispute_id})",
        )
        row.from_wallet += from_wallet
        row.to_receivable += receivable
        if status == "lost":
            row.status, outcome = ReversalStatus.LOST, "dispute_lost"
        elif row.status != ReversalStatus.LOST:
            row.status, outcome = ReversalStatus.OPEN, "dispute_opened"
        else:
            outcome = "dispute_lost"
    row.save()
    audit_record(
        org=topup.org,
        actor=None,
        action=f"topup.dispute_{row.status}",
        target=row,
        changes={
            "dispute": dispute_id,
            "stripe_status": status,
            "amount": str(amount),
            "from_wallet": str(row.from_wallet),
            "receivable": str(row.to_receivable),
        },
    )
    return outcome


def _dispute_reinstate(*, row: PaymentReversal, dispute_id: str) -> str:
    """A won dispute gives back exactly what its opening took: the wallet part to the wallet,
    the rest off the receivable account."""
    if row.status == ReversalStatus.WON:
        return "dispute_won"
    if row.from_wallet or row.to_receivable:
        legs = [
            (
                system_account(currency=row.currency, kind=AccountKind.PAYMENTS),
                -(row.from_wallet + row.to_receivable),
            )
        ]
        if row.from_wallet:
            legs.append((wallet_for(org=row.org, currency=row.currency), row.from_wallet))
        if row.to_receivable:
            legs.append(
                (
                    system_account(currency=row.currency, kind=AccountKind.RECEIVABLE),
                    row.to_receivable,
                )
            )
        transaction_post(
            org=row.org,
            kind=TransactionKind.CHARGEBACK,
            legs=legs,
            reference=f"stripe-dispute-won:{dispute_id}",
            reason=f"Dispute {dispute_id} won: funds reinstated (top-up #{row.topup_id})",
        )
        row.from_wallet = row.to_receivable = ZERO
    row.status = ReversalStatus.WON
    return "dispute_won"
