"""What each depth runs, and the messages of each step.

The model receives the figures as data (JSON computed by `researcher.figures`) and is told
not to compute numbers itself; each step sees the outputs of the steps before it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class DepthPlan:
    steps: tuple[str, ...]
    max_tokens: int  # output tokens each step may use (lowered to fit the run budget)


DEPTHS: dict[str, DepthPlan] = {
    "quick": DepthPlan(steps=("plan", "analyse", "report"), max_tokens=400),
    "standard": DepthPlan(steps=("plan", "analyse", "challenge", "report"), max_tokens=800),
    "deep": DepthPlan(steps=("plan", "analyse", "challenge", "revise", "report"), max_tokens=1600),
}

# Marks a researcher step for the built-in demo upstream (routing/providers/demo.py).
MARKER = "[tokenforge researcher step: {name}]"

SYSTEM = (
    MARKER + "\n"
    "You are a careful equity research analyst working for a trading team. "
    "The figures you are given were computed by code from the price history: use them as "
    "they are, quote them, and never recompute or invent numbers. Say what the data cannot "
    "tell. This is research, not investment advice."
)

INSTRUCTIONS = {
    "plan": (
        "Write a short research plan for the question: which signals in the figures matter, "
        "what would confirm or refute a thesis, and what you will check. Bullet points."
    ),
    "analyse": (
        "Follow the plan. Analyse momentum, trend (price against its moving averages), risk "
        "(volatility, drawdown) and RSI for each ticker, citing the figures. State a thesis."
    ),
    "challenge": (
        "Challenge the thesis above as a sceptical reviewer: the strongest counter-arguments, "
        "what the figures do not support, and the risks that were missed."
    ),
    "revise": (
        "Revise the thesis in the light of the challenge: what still holds, what changes, "
        "and how confident the conclusion can be."
    ),
    "report": (
        "Write the final report in Markdown: a title, a one-paragraph summary answering the "
        "question, sections for each ticker citing the figures, the main risks, and a short "
        "conclusion. Do not include a figures table: it is appended by code."
    ),
}


def step_messages(
    *, name: str, question: str, tickers: list[str], figures: dict, previous: list[tuple[str, str]]
) -> list[dict]:
    data = {"question": question, "tickers": tickers, "figures": figures}
    parts = [
        "Research data (JSON):",
        json.dumps(data, sort_keys=True, separators=(",", ":")),
    ]
    for prev_name, output in previous:
        parts.append(f"\n## Output of the {prev_name} step\n{output}")
    parts.append(f"\n## Your task ({name})\n{INSTRUCTIONS[name]}")
    return [
        {"role": "system", "content": SYSTEM.format(name=name)},
        {"role": "user", "content": "\n".join(parts)},
    ]
