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
    RMB = "RMB", "RMB (CNY)"


CURRENCY_SYMBOL = {Currency.CREDIT: "$", Currency.RMB: "¥"}
# What customers call the wallets, everywhere (pages, admin, emails, refusals).
WALLET_NAMES = {"CREDIT": "Credit (USD)", "RMB": "RMB (CNY)"}
# The currency a wallet is paid in (Stripe's lower-case ISO codes).
WALLET_ISO = {"CREDIT": "usd", "RMB": "cny"}


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


def admin_money(field: str, *, description: str, currency_field: str = "currency"):
    """The admin's one money column: `list_display = (..., admin_money("posted", ...))`,
    in the same format as the pages (symbol, no E notation)."""
    from django.contrib import admin

    @admin.display(description=description, ordering=field)
    def column(obj) -> str:
        value = getattr(obj, field)
        return money_format(value() if callable(value) else value, getattr(obj, currency_field))

    column.__name__ = f"{field}_money"
    return column


def wallet_name(currency: str | None) -> str:
    return WALLET_NAMES.get(str(currency or "").upper(), str(currency or ""))


def money_format(value, currency: str | None = None, *, total: bool = False) -> str:
    """The one money format for people (pages, admin, messages, chart axes).

    The currency's symbol when it is known; never E notation. `total=True` rounds to 2
    decimals (a balance, a sum), keeping "<$0.01" for a non-zero amount that rounds away;
    otherwise small amounts keep their significant digits (0.0002184), with at least 2
    decimals and at most the 10 stored.
    """
    if value is None or value == "":
        return ""
    try:
        amount = Decimal(str(value))
    except ArithmeticError:
        return str(value)
    if not amount.is_finite():
        return str(amount)
    symbol = CURRENCY_SYMBOL.get(str(currency or "").upper(), "")
    sign = "-" if amount < 0 else ""
    amount = abs(amount).quantize(QUANTUM)
    if amount == 0:
        return f"{symbol}0.00"
    if total:
        rounded = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        if rounded == 0:
            return f"<{sign}{symbol}0.01"
        return f"{sign}{symbol}{rounded:,.2f}"
    text = format(amount.normalize(), "f")
    whole, _, fraction = text.partition(".")
    return f"{sign}{symbol}{int(whole):,}.{fraction.ljust(2, '0')}"
