"""Balanced, idempotent ledger transactions and the wallets they move."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F

from accounts.models import Organization
from ledger.errors import InsufficientBalance, UnbalancedTransaction
from ledger.models import FUNDING_KINDS, Account, AccountKind, Posting, Transaction
from ledger.money import ZERO, Currency, to_money


def wallets_open(*, org: Organization) -> list[Account]:
    """Create the organization's CREDIT and RMB wallets (idempotent)."""
    wallets = []
    for currency in Currency.values:
        wallet, _ = Account.objects.get_or_create(
            org=org, currency=currency, kind=AccountKind.WALLET
        )
        wallets.append(wallet)
    return wallets


def system_account(*, currency: str, kind: str) -> Account:
    """The system account of a kind in a currency, created on first use."""
    try:
        return Account.objects.get(org__isnull=True, currency=currency, kind=kind)
    except Account.DoesNotExist:
        try:
            with transaction.atomic():
                return Account.objects.create(org=None, currency=currency, kind=kind)
        except IntegrityError:
            return Account.objects.get(org__isnull=True, currency=currency, kind=kind)


def wallet_for(*, org: Organization | int, currency: str) -> Account:
    org_id = org if isinstance(org, int) else org.pk
    return Account.objects.get(org_id=org_id, currency=currency, kind=AccountKind.WALLET)


def transaction_post(
    *,
    org: Organization | None,
    kind: str,
    legs: Iterable[tuple[Account, Decimal]],
    reference: str | None = None,
    reason: str = "",
    created_by: Any | None = None,
    corrects: Transaction | None = None,
    hold_id: Any | None = None,
) -> tuple[Transaction, bool]:
    """Post a balanced transaction; returns (transaction, created).

    Idempotent by `reference`: the insert of the transaction row claims the key first, so a
    concurrent duplicate blocks on the unique index and then finds the committed row.
    Wallet balances move by guarded UPDATEs (never read-then-write), in account-id order so
    concurrent transactions cannot deadlock; a debit that would overdraw raises
    InsufficientBalance and nothing is posted.
    """
    legs = [(account, to_money(amount)) for account, amount in legs]
    totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for account, amount in legs:
        totals[account.currency] += amount
    if len(legs) < 2 or any(total != ZERO for total in totals.values()):
        raise UnbalancedTransaction(f"postings must sum to zero per currency: {dict(totals)}")

    with transaction.atomic():
        if reference is not None:
            existing = Transaction.objects.filter(reference=reference).first()
            if existing is not None:
                return existing, False
            try:
                with transaction.atomic():
                    txn = _transaction_insert(
                        org, kind, reference, reason, created_by, corrects, hold_id
                    )
            except IntegrityError:
                return Transaction.objects.get(reference=reference), False
        else:
            txn = _transaction_insert(org, kind, reference, reason, created_by, corrects, hold_id)

        Posting.objects.bulk_create(
            [
                Posting(transaction=txn, account=account, currency=account.currency, amount=amount)
                for account, amount in legs
            ]
        )
        for account, amount in sorted(legs, key=lambda leg: leg[0].pk):
            if account.kind in FUNDING_KINDS:
                _wallet_move(account, amount)
    return txn, True


def _transaction_insert(org, kind, reference, reason, created_by, corrects, hold_id) -> Transaction:
    return Transaction.objects.create(
        org=org,
        kind=kind,
        reference=reference,
        reason=reason,
        created_by=created_by if getattr(created_by, "pk", None) else None,
        corrects=corrects,
        hold_id=hold_id,
    )


def _wallet_move(wallet: Account, amount: Decimal) -> None:
    """Change a wallet's posted balance; a debit must leave available >= 0."""
    query = Account.objects.filter(pk=wallet.pk, kind__in=FUNDING_KINDS)
    if amount < 0:
        query = query.filter(posted__gte=F("held") - amount)
    if query.update(posted=F("posted") + amount) != 1:
        raise InsufficientBalance(wallet.currency)
