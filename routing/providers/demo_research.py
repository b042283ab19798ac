"""The demo upstream's answers to AI Researcher steps (`make run` works offline).

A step's system message starts with "[tokenforge researcher step: NAME]" and its user message
carries the run's data as JSON; the answer quotes the computed figures, never new numbers.
"""

from __future__ import annotations

import json
import re

_MARKER = re.compile(r"^\[tokenforge researcher step: (\w+)\]")


def researcher_step(body: dict) -> str | None:
    """The step's name when `body` is a researcher step, else None."""
    messages = body.get("messages") or []
    first = messages[0] if messages and isinstance(messages[0], dict) else {}
    content = first.get("content") if first.get("role") == "system" else None
    match = _MARKER.match(content) if isinstance(content, str) else None
    return match.group(1) if match else None


def _data(body: dict) -> dict:
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str) and content.startswith("Research data (JSON):\n"):
            try:
                return json.loads(content.split("\n", 2)[1])
            except (ValueError, IndexError):
                return {}
    return {}


def _signals(ticker: str, f: dict) -> list[str]:
    lines = []
    if f.get("return_20d_pct") is not None:
        lines.append(f"{ticker} returned {f['return_20d_pct']}% over 20 trading days")
    if f.get("close_vs_ma_50_pct") is not None:
        side = "above" if not str(f["close_vs_ma_50_pct"]).startswith("-") else "below"
        lines.append(f"it closes {side} its 50-day average ({f['close_vs_ma_50_pct']}%)")
    if f.get("rsi_14") is not None:
        lines.append(f"RSI(14) stands at {f['rsi_14']}")
    if f.get("max_drawdown_pct") is not None:
        lines.append(f"the worst drawdown in the period was {f['max_drawdown_pct']}%")
    return lines


def researcher_answer(body: dict, step: str) -> str:
    data = _data(body)
    question = data.get("question") or "the question"
    figures = data.get("figures") or {}
    tickers = data.get("tickers") or list(figures)
    facts = ["; ".join(_signals(t, figures[t])) + "." for t in tickers if figures.get(t)] or [
        "No price history was given, so the analysis rests on the question alone."
    ]
    if step == "plan":
        return (
            "- Check trend: close against the 20/50/200-day averages.\n"
            "- Check momentum: 20 and 60-day returns, RSI(14).\n"
            "- Check risk: volatility and max drawdown.\n"
            "- Decide whether the figures support the thesis behind the question."
        )
    if step == "analyse":
        return "Analysis (demo upstream): " + " ".join(facts)
    if step == "challenge":
        return (
            "Challenge: momentum can fade quickly after earnings; an RSI above 70 often "
            "precedes consolidation, and past drawdowns show how far the price can fall."
        )
    if step == "revise":
        return "Revised: the thesis holds only while the price stays above its moving averages."
    lines = [
        f"# Research report: {question}",
        "",
        "**Summary.** This report was written by the built-in demo upstream, which quotes the "
        "figures the gateway computed from the price history.",
        "",
    ]
    for t, fact in zip(tickers, facts, strict=False):
        lines += [f"## {t}", "", fact, ""]
    lines += [
        "## Risks",
        "",
        "Momentum reversals, earnings surprises and market-wide drawdowns.",
        "",
        "## Conclusion",
        "",
        "Read the figures table below; this demo answer is not investment advice.",
    ]
    return "\n".join(lines)
