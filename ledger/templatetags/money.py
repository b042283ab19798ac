"""`{{ value|money }}`: an exact amount for people, never rounded and never in E notation.

Stored amounts carry 10 places; a request can cost 0.0002184. Rounding to cents on the page
would make parts that add up exactly look as if they did not, so trailing zeros are dropped
instead (but at least two places stay: 12.50, 0.0002184).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import template

from ledger.money import QUANTUM

register = template.Library()


@register.filter
def money(value) -> str:
    if value is None or value == "":
        return ""
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if not amount.is_finite():
        return str(amount)
    amount = amount.quantize(QUANTUM)  # storage precision; a burn rate divides by 7
    if amount == 0:
        return "0.00"
    text = format(amount.normalize(), "f")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"
