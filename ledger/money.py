"""The one place that says how money is stored: Decimal, 10 places, never float.

Amounts are stored unrounded (10 decimal places covers a per-token price of a
millionth of a cent); only display rounds, with `display`.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django.db import models

MONEY_DIGITS = 28
MONEY_PLACES = 10
ZERO = Decimal("0")
QUANTUM = Decimal(1).scaleb(-MONEY_PLACES)
TOKENS_PER_PRICE_UNIT = Decimal(1_000_000)  # route prices are per 1M tokens


class Currency(models.TextChoices):
    CREDIT = "CREDIT", "Credit (USD)"
    RMB = "RMB", "RMB balance (CNY)"


CURRENCY_SYMBOL = {Currency.CREDIT: "$", Currency.RMB: "¥"}


def MoneyField(**kwargs) -> models.DecimalField:  # noqa: N802 - reads like a field class
    kwargs.setdefault("default", ZERO)
    return models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, **kwargs)


def to_money(value: Decimal | int | str) -> Decimal:
    """Parse and quantize to storage precision; refuses floats so they cannot sneak in."""
    if isinstance(value, float):
        raise TypeError("money must not be a float")
    return Decimal(value).quantize(QUANTUM, rounding=ROUND_HALF_UP)


def display(value: Decimal, places: int = 2) -> str:
    return str(value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))
