"""Corrections: compensating transactions that point at what they correct.

Ledger rows never change, so an operator fixes a mistake by posting a new transaction with
`corrects`, a reason and the operator who made it. Every correction of one transaction
takes that transaction's row lock first (SELECT ... FOR UPDATE: a lock, not an update), so
two operators correcting the same transaction at once cannot both refund the same money.
A debit that would overdraw the wallet is refused by the same guarded UPDATE as any debit.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.db import transaction as db_transaction
from django.db.models import Sum

from accounts.audit import audit_record
from accounts.models import Organization
from ledger.errors import InsufficientBalance, InvalidAmount, LedgerError
from ledger.models import (
    Account,
    AccountKind,
    Posting,
    Transaction,
    TransactionKind,
    UsageRecord,
)
from ledger.money import ZERO, to_money
from ledger.services.postings import system_account, transaction_post, wallet_for
from ledger.services.topups import currency_validate


class CorrectionRefused(LedgerError):
    """The correction cannot be posted as asked (nothing left to reverse, too large a refund)."""

    code = "correction_refused"


def _reason_validate(reason: str) -> str:
    reason = str(reason or "").strip()
    if not reason:
        raise InvalidAmount("A correction needs a reason.")
    return reason


def adjustment_post(
    *,
    org: Organization,
    currency: str,
    amount: Decimal | str,
    reason: str,
    operator: Any | None,
    corrects: Transaction | None = None,
    reference: str | None = None,
) -> Transaction:
    """Credit (amount > 0) or debit (amount < 0) a wallet against the adjustments account.

    A debit beyond the wallet's available balance raises InsufficientBalance and posts
    nothing. `reference` makes it idempotent (the same reference posts once).
    """
    currency = currency_validate(currency)
    reason = _reason_validate(reason)
    if isinstance(amount, float):
        raise InvalidAmount("Amounts must be decimals, not floats.")
    try:
        value = to_money(Decimal(str(amount).strip()) if isinstance(amount, str) else amount)
    except ArithmeticError:
        raise InvalidAmount(f"{amount!r} is not a number.") from None
    if not value.is_finite() or value == ZERO:
        raise InvalidAmount("An adjustment must be a non-zero amount.")
    if corrects is not None and corrects.org_id not in (None, org.pk):
        raise CorrectionRefused("The corrected transaction belongs to another organization.")
    wallet = wallet_for(org=org, currency=currency)
    with db_transaction.atomic():
        if corrects is not None:
            Transaction.objects.select_for_update().filter(pk=corrects.pk).first()
        try:
            txn, created = transaction_post(
                org=org,
                kind=TransactionKind.ADJUSTMENT,
                legs=[
                    (wallet, value),
                    (system_account(currency=currency, kind=AccountKind.ADJUSTMENTS), -value),
                ],
                reference=f"adjust:{reference}" if reference else None,
                reason=reason,
                created_by=operator,
                corrects=corrects,
            )
        except InsufficientBalance:
            available = Account.objects.get(pk=wallet.pk).available
            raise InsufficientBalance(
                currency,
                f"Refused: debiting {-value} {currency} would overdraw the wallet "
                f"(available {available}).",
            ) from None
        if created:
            audit_record(
                org=org,
                actor=operator,
                action="ledger.adjustment",
                target=txn,
                changes={
                    "currency": currency,
                    "amount": str(value),
                    "reason": reason,
                    "corrects": corrects.pk if corrects is not None else None,
                },
            )
    return txn


def _net_legs(original: Transaction) -> dict[int, Decimal]:
    """Per account: the original's postings plus those of every direct correction of it."""
    rows = (
        Posting.objects.filter(transaction__in=[original.pk])
        .values("account_id")
        .annotate(total=Sum("amount"))
    )
    net: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for row in rows:
        net[row["account_id"]] += row["total"]
    corrections = (
        Posting.objects.filter(transaction__corrects_id=original.pk)
        .values("account_id")
        .annotate(total=Sum("amount"))
    )
    for row in corrections:
        net[row["account_id"]] += row["total"]
    return {account_id: total for account_id, total in net.items() if total != ZERO}


def transaction_reverse(
    *, transaction: Transaction, reason: str, operator: Any | None
) -> Transaction:
    """Undo what a transaction (and any corrections of it) still moves, once.

    Reversing usage is a refund (kind `refund`); anything else is an adjustment. Reversing a
    credit the organization has already spent is refused rather than overdrawing.
    """
    reason = _reason_validate(reason)
    with db_transaction.atomic():
        original = Transaction.objects.select_for_update().get(pk=transaction.pk)
        net = _net_legs(original)
        if not net:
            raise CorrectionRefused(f"Transaction #{original.pk} has nothing left to reverse.")
        accounts = Account.objects.in_bulk(list(net))
        kind = (
            TransactionKind.REFUND
            if original.kind == TransactionKind.USAGE
            else TransactionKind.ADJUSTMENT
        )
        try:
            txn, _ = transaction_post(
                org=original.org,
                kind=kind,
                legs=[(accounts[account_id], -total) for account_id, total in sorted(net.items())],
                reason=reason,
                created_by=operator,
                corrects=original,
            )
        except InsufficientBalance as exc:
            raise InsufficientBalance(
                exc.currency,
                f"Refused: reversing transaction #{original.pk} would overdraw the "
                f"{exc.currency} wallet.",
            ) from None
        audit_record(
            org=original.org,
            actor=operator,
            action="ledger.reverse",
            target=txn,
            changes={"corrects": original.pk, "reason": reason, "kind": kind},
        )
    return txn


def usage_refund(
    *,
    usage_record: UsageRecord,
    amount: Decimal | str | None,
    reason: str,
    operator: Any | None,
) -> Transaction:
    """Give back part (or, with amount=None, the rest) of what a request charged the wallet.

    Refunds of one request never add up to more than its wallet was charged.
    """
    reason = _reason_validate(reason)
    if usage_record.transaction_id is None:
        raise CorrectionRefused("This request charged nothing, so there is nothing to refund.")
    with db_transaction.atomic():
        original = Transaction.objects.select_for_update().get(pk=usage_record.transaction_id)
        wallet = wallet_for(org=usage_record.org_id, currency=usage_record.wallet)
        charged = -(_net_legs(original).get(wallet.pk, ZERO))
        value = charged if amount is None else to_money(amount)
        if value <= ZERO or value > charged:
            raise CorrectionRefused(
                f"A refund of this request must be more than 0 and at most {charged} "
                f"{wallet.currency} (what it charged, less earlier refunds)."
            )
        txn, _ = transaction_post(
            org=original.org,
            kind=TransactionKind.REFUND,
            legs=[
                (wallet, value),
                (
                    system_account(currency=wallet.currency, kind=AccountKind.USAGE_REVENUE),
                    -value,
                ),
            ],
            reason=reason,
            created_by=operator,
            corrects=original,
        )
        audit_record(
            org=original.org,
            actor=operator,
            action="ledger.refund",
            target=txn,
            changes={
                "request_id": usage_record.request_id,
                "amount": str(value),
                "currency": wallet.currency,
                "reason": reason,
            },
        )
    return txn
