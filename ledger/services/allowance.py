"""The AI Researcher's free monthly allowance: every organization gets, per currency, the
amount the operator sets (RESEARCHER_MONTHLY_ALLOWANCE, default none), funded from the
promotions system account. Researcher steps hold on it before the organization's wallet
(ledger.services.holds); what is left at the end of a month does not carry over.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from ledger.models import Account, AccountKind, Transaction, TransactionKind
from ledger.money import ZERO, to_money
from ledger.services.postings import system_account, transaction_post


def allowance_monthly_amount(*, currency: str) -> Decimal:
    raw = (getattr(settings, "RESEARCHER_MONTHLY_ALLOWANCE", None) or {}).get(currency)
    return to_money(raw) if raw not in (None, "") else ZERO


def allowance_account(*, org_id: int, currency: str) -> Account | None:
    return Account.objects.filter(
        org_id=org_id, currency=currency, kind=AccountKind.ALLOWANCE
    ).first()


def allowance_refresh(*, org_id: int, currency: str, now: datetime | None = None) -> Account | None:
    """Set this month's allowance (once per organization, currency and month, by reference):
    posted becomes the monthly amount (never below what pending holds reserve)."""
    amount = allowance_monthly_amount(currency=currency)
    account = allowance_account(org_id=org_id, currency=currency)
    if amount <= 0 and account is None:
        return None
    month = (now or timezone.now()).strftime("%Y-%m")
    reference = f"researcher-allowance:{org_id}:{currency}:{month}"
    if Transaction.objects.filter(reference=reference).exists():
        return account
    if account is None:
        try:
            with transaction.atomic():
                account = Account.objects.create(
                    org_id=org_id, currency=currency, kind=AccountKind.ALLOWANCE
                )
        except IntegrityError:
            account = allowance_account(org_id=org_id, currency=currency)
    with transaction.atomic():
        locked = Account.objects.select_for_update().get(pk=account.pk)
        delta = max(amount, locked.held) - locked.posted
        if delta != 0:
            promotions = system_account(currency=currency, kind=AccountKind.PROMOTIONS)
            transaction_post(
                org=locked.org,
                kind=TransactionKind.ALLOWANCE,
                legs=[(locked, delta), (promotions, -delta)],
                reference=reference,
                reason=f"AI Researcher allowance for {month}",
            )
    account.refresh_from_db()
    return account
