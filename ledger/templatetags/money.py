"""`{{ value|money }}` / `{{ value|money:"RMB" }}` / `{{ value|money_total:"CREDIT" }}`.

One money format (`ledger.money.money_format`): exact small amounts (a request can cost
0.0002184, and parts must visibly add up), totals to 2 decimals, the currency's symbol when
the currency is given, never E notation.
"""

from __future__ import annotations

from django import template

from ledger.money import money_format
from ledger.money import wallet_name as _wallet_name

register = template.Library()


@register.filter
def money(value, currency=None) -> str:
    return money_format(value, currency)


@register.filter
def money_total(value, currency=None) -> str:
    return money_format(value, currency, total=True)


@register.filter
def customer_reference(reference) -> str:
    """A transaction's reference as a customer may see it: the payment provider's id, never
    our global row numbers (test:17, redeem:42) that would reveal other customers' volume."""
    text = str(reference or "")
    if text.startswith("stripe:"):
        return text.removeprefix("stripe:")
    return ""


@register.filter
def wallet_name(currency) -> str:
    """CREDIT -> "Credit (USD)", RMB -> "RMB (CNY)"."""
    return _wallet_name(currency)
