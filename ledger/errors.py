"""Errors the ledger raises; callers map them to HTTP answers (402 and friends)."""

from __future__ import annotations


class LedgerError(Exception):
    code = "ledger_error"


class UnbalancedTransaction(LedgerError):
    code = "unbalanced_transaction"


class InsufficientBalance(LedgerError):
    """The wallet's available balance cannot cover the amount."""

    code = "insufficient_balance"

    def __init__(self, currency: str, message: str | None = None):
        self.currency = currency
        super().__init__(message or f"Insufficient {currency} balance.")


class BudgetExceeded(LedgerError):
    """A project or key budget would be crossed; `scope` is "project" or "key"."""

    code = "budget_exceeded"

    def __init__(
        self, *, scope: str, budget_id: int, currency: str, period: str, message: str | None = None
    ):
        self.scope = scope
        self.budget_id = budget_id
        self.currency = currency
        self.period = period
        super().__init__(message or f"The {scope} {period} budget in {currency} would be exceeded.")


class InvalidAmount(LedgerError):
    code = "invalid_amount"
