"""Price history parsing and the figures computed from it, by code, never by the model.

`prices_parse` reads `date,open,high,low,close,volume` CSV (header required, dates ascending
after sorting, one row per date) and names the line of every problem. `figures_compute`
turns a series into returns over several windows, volatility, max drawdown, moving averages
and RSI. Arithmetic uses Decimal where the result is shown, floats only for sqrt.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import date
from decimal import Decimal, InvalidOperation

COLUMNS = ("date", "open", "high", "low", "close", "volume")
MAX_ROWS = 5000
RETURN_WINDOWS = (5, 20, 60, 120, 250)  # trading days: a week, a month, a quarter, half, year
MA_WINDOWS = (20, 50, 200)
RSI_PERIOD = 14
TRADING_DAYS = 252


class PriceDataError(ValueError):
    """Bad price history; the message names the line (and the ticker when known)."""


def prices_parse(text: str, *, ticker: str = "") -> list[list]:
    """Rows `[iso_date, open, high, low, close, volume]` (numbers as strings), oldest first."""
    where = f" for {ticker}" if ticker else ""
    if not isinstance(text, str) or not text.strip():
        raise PriceDataError(f"the price history{where} is empty")
    reader = csv.reader(io.StringIO(text.strip()))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except (StopIteration, csv.Error) as exc:
        raise PriceDataError(f"line 1{where}: cannot read the header") from exc
    if tuple(header) != COLUMNS:
        raise PriceDataError(
            f"line 1{where}: the header must be {','.join(COLUMNS)} (got {','.join(header)})"
        )
    rows: list[list] = []
    seen: set[str] = set()
    try:
        for number, raw in enumerate(reader, start=2):
            if not raw or all(not cell.strip() for cell in raw):
                continue
            if len(raw) != len(COLUMNS):
                raise PriceDataError(
                    f"line {number}{where}: expected {len(COLUMNS)} values, got {len(raw)}"
                )
            cells = [cell.strip() for cell in raw]
            try:
                day = date.fromisoformat(cells[0]).isoformat()
            except ValueError as exc:
                raise PriceDataError(
                    f"line {number}{where}: date {cells[0]!r} is not YYYY-MM-DD"
                ) from exc
            if day in seen:
                raise PriceDataError(f"line {number}{where}: date {day} appears twice")
            seen.add(day)
            values = []
            for name, cell in zip(COLUMNS[1:], cells[1:], strict=True):
                try:
                    value = Decimal(cell)
                except InvalidOperation as exc:
                    raise PriceDataError(
                        f"line {number}{where}: {name} {cell!r} is not a number"
                    ) from exc
                if not value.is_finite() or value < 0 or (name != "volume" and value == 0):
                    raise PriceDataError(f"line {number}{where}: {name} must be positive")
                values.append(value)
            o, h, low, c, _v = values
            if h < max(o, c, low) or low > min(o, c):
                raise PriceDataError(
                    f"line {number}{where}: high/low do not contain open and close"
                )
            rows.append([day, *(format(v, "f") for v in values)])
            if len(rows) > MAX_ROWS:
                raise PriceDataError(f"line {number}{where}: more than {MAX_ROWS} rows")
    except csv.Error as exc:
        raise PriceDataError(f"line {reader.line_num}{where}: {exc}") from exc
    if len(rows) < 2:
        raise PriceDataError(f"the price history{where} needs at least two rows")
    rows.sort(key=lambda r: r[0])
    return rows


def _ret(closes: list[Decimal], window: int) -> str | None:
    if len(closes) <= window:
        return None
    return _pct(closes[-1] / closes[-1 - window] - 1)


def _pct(value: Decimal) -> str:
    return format((value * 100).quantize(Decimal("0.01")), "f")


def _round(value: Decimal | float, places: str = "0.01") -> str:
    return format(Decimal(str(value)).quantize(Decimal(places)), "f")


def moving_average(closes: list[Decimal], window: int) -> list[Decimal | None]:
    out: list[Decimal | None] = []
    total = Decimal(0)
    for i, close in enumerate(closes):
        total += close
        if i >= window:
            total -= closes[i - window]
        out.append(total / window if i >= window - 1 else None)
    return out


def rsi(closes: list[Decimal], period: int = RSI_PERIOD) -> Decimal | None:
    """Wilder's RSI over the whole series; None with fewer than period + 1 closes."""
    if len(closes) <= period:
        return None
    changes = [b - a for a, b in zip(closes, closes[1:], strict=False)]
    gain = sum((c for c in changes[:period] if c > 0), Decimal(0)) / period
    loss = sum((-c for c in changes[:period] if c < 0), Decimal(0)) / period
    for change in changes[period:]:
        gain = (gain * (period - 1) + max(change, Decimal(0))) / period
        loss = (loss * (period - 1) + max(-change, Decimal(0))) / period
    if loss == 0:
        return Decimal(100)
    return 100 - 100 / (1 + gain / loss)


def figures_compute(rows: list[list]) -> dict:
    """The figures the model receives as data (strings, percentages where named `_pct`)."""
    closes = [Decimal(r[4]) for r in rows]
    daily = [float(b / a - 1) for a, b in zip(closes, closes[1:], strict=False)]
    figures: dict = {
        "first_date": rows[0][0],
        "last_date": rows[-1][0],
        "days": len(rows),
        "last_close": _round(closes[-1]),
    }
    for window in RETURN_WINDOWS:
        figures[f"return_{window}d_pct"] = _ret(closes, window)
    figures["return_total_pct"] = _pct(closes[-1] / closes[0] - 1)
    if len(daily) >= 2:
        mean = sum(daily) / len(daily)
        var = sum((d - mean) ** 2 for d in daily) / (len(daily) - 1)
        figures["volatility_annual_pct"] = _round(math.sqrt(var) * math.sqrt(TRADING_DAYS) * 100)
    else:
        figures["volatility_annual_pct"] = None
    peak, drawdown = closes[0], Decimal(0)
    for close in closes:
        peak = max(peak, close)
        drawdown = min(drawdown, close / peak - 1)
    figures["max_drawdown_pct"] = _pct(drawdown)
    for window in MA_WINDOWS:
        ma = moving_average(closes, window)[-1]
        figures[f"ma_{window}"] = _round(ma) if ma is not None else None
        figures[f"close_vs_ma_{window}_pct"] = _pct(closes[-1] / ma - 1) if ma else None
    value = rsi(closes)
    figures[f"rsi_{RSI_PERIOD}"] = _round(value) if value is not None else None
    figures["high_period"] = _round(max(Decimal(r[2]) for r in rows))
    figures["low_period"] = _round(min(Decimal(r[3]) for r in rows))
    return figures


def chart_series(rows: list[list]) -> dict:
    """Dates, closes and the moving averages, for the run page's chart."""
    closes = [Decimal(r[4]) for r in rows]
    series = {"dates": [r[0] for r in rows], "close": [float(c) for c in closes]}
    for window in MA_WINDOWS:
        if len(closes) >= window:
            series[f"ma_{window}"] = [
                float(round(v, 4)) if v is not None else None
                for v in moving_average(closes, window)
            ]
    return series


FIGURE_LABELS = {
    "first_date": "First date",
    "last_date": "Last date",
    "days": "Trading days",
    "last_close": "Last close",
    "return_5d_pct": "Return, 5 days (%)",
    "return_20d_pct": "Return, 20 days (%)",
    "return_60d_pct": "Return, 60 days (%)",
    "return_120d_pct": "Return, 120 days (%)",
    "return_250d_pct": "Return, 250 days (%)",
    "return_total_pct": "Return, whole period (%)",
    "volatility_annual_pct": "Volatility, annualised (%)",
    "max_drawdown_pct": "Max drawdown (%)",
    "ma_20": "Moving average, 20 days",
    "ma_50": "Moving average, 50 days",
    "ma_200": "Moving average, 200 days",
    "close_vs_ma_20_pct": "Close vs MA20 (%)",
    "close_vs_ma_50_pct": "Close vs MA50 (%)",
    "close_vs_ma_200_pct": "Close vs MA200 (%)",
    "rsi_14": "RSI (14)",
    "high_period": "Period high",
    "low_period": "Period low",
}


def figures_markdown(figures: dict[str, dict]) -> str:
    """The computed figures as a Markdown table (one column per ticker)."""
    if not figures:
        return "_No price history was given, so no figures were computed._"
    tickers = list(figures)
    lines = [
        "| Figure | " + " | ".join(tickers) + " |",
        "| --- |" + " ---: |" * len(tickers),
    ]
    for key, label in FIGURE_LABELS.items():
        values = [figures[t].get(key) for t in tickers]
        if all(v is None for v in values):
            continue
        cells = ["n/a" if v is None else str(v) for v in values]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
