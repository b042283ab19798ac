"""Shared checks for the top-up tests."""

from __future__ import annotations

from django.db.models import Sum

from ledger.models import Account, AccountKind, Posting
from ledger.money import ZERO


def assert_wallets_consistent() -> None:
    """Each wallet's cached `posted` equals the sum of its postings."""
    for wallet in Account.objects.filter(kind=AccountKind.WALLET):
        total = Posting.objects.filter(account=wallet).aggregate(s=Sum("amount"))["s"] or ZERO
        assert wallet.posted == total, f"{wallet}: posted {wallet.posted} != postings {total}"


def posted(org, currency: str):
    return Account.objects.get(org=org, currency=currency, kind=AccountKind.WALLET).posted
