"""Shared helpers for the ledger-core tests: money in, balances out, reconcile must pass."""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal

from django.db import connection

from ledger.models import Account, AccountKind
from ledger.services.postings import system_account, transaction_post, wallet_for
from ledger.services.reconcile import reconcile


def fund(org, currency: str = "CREDIT", amount: str = "10") -> None:
    transaction_post(
        org=org,
        kind="grant",
        legs=[
            (wallet_for(org=org, currency=currency), Decimal(amount)),
            (system_account(currency=currency, kind=AccountKind.GRANTS), -Decimal(amount)),
        ],
        reference=f"test-fund-{uuid.uuid4().hex}",
    )


def wallet(org, currency: str = "CREDIT") -> Account:
    return Account.objects.get(org=org, currency=currency, kind=AccountKind.WALLET)


def assert_reconciled(org=None) -> None:
    report = reconcile(org=org)
    assert report.ok, "\n".join(str(p) for p in report.problems)


def run_at_once(target, args_list: list[tuple]) -> list:
    """Run `target(*args)` in one thread per args, released together; results in order.

    Each thread closes its own database connection, so none is left open for teardown.
    """
    results: list = [None] * len(args_list)
    barrier = threading.Barrier(len(args_list))

    def run(index: int, args: tuple) -> None:
        try:
            barrier.wait()
            results[index] = target(*args)
        except Exception as exc:  # returned, so the test can count refusals by type
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(args_list)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
