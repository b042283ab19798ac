"""The one cost formula: token classes × per-1M prices, plus a flat fee, times the multiplier.

    cost = (Σ tokens[part] × price[part] / 1,000,000 + per_request) × price_multiplier

rounded once, at the end, to storage precision (10 places). Every token class is counted once:
the reported totals are split so that the parts add up to them exactly (`token_split`).
The gateway prices a request with it (routing/pricing.py), the request's story shows its
lines (ledger dashboard), and reconcile_upstream re-derives a bill with it, so all three agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ledger.money import ZERO, to_money

# Input side first, then output side: the order the story page lists them in.
INPUT_PARTS = ("input", "cached_input", "cache_write", "cache_write_1h", "input_audio")
OUTPUT_PARTS = ("output", "reasoning", "output_audio")
TOKEN_PARTS = INPUT_PARTS + OUTPUT_PARTS
PART_LABELS = {
    "input": "Input (fresh)",
    "cached_input": "Cache read",
    "cache_write": "Cache write (5 min)",
    "cache_write_1h": "Cache write (1 hour)",
    "input_audio": "Input audio",
    "output": "Output",
    "reasoning": "Reasoning",
    "output_audio": "Output audio",
}


def token_split(
    *,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int = 0,
    cache_write_tokens: int = 0,
    cache_write_1h_tokens: int = 0,
    input_audio_tokens: int = 0,
    reasoning_tokens: int = 0,
    output_audio_tokens: int = 0,
) -> dict[str, int]:
    """Tokens per price part. `prompt_tokens` counts every input token (fresh, cache reads,
    cache writes, audio) and `completion_tokens` every output token (reasoning and audio
    included), as OpenAI reports them; a class larger than what is left of its total is cut
    to it, so no token is ever priced twice."""
    left = max(0, int(prompt_tokens))
    read = min(max(0, int(cached_tokens or 0)), left)
    left -= read
    write = min(max(0, int(cache_write_tokens or 0)), left)
    left -= write
    write_1h = min(max(0, int(cache_write_1h_tokens or 0)), left)
    left -= write_1h
    audio_in = min(max(0, int(input_audio_tokens or 0)), left)
    fresh = left - audio_in
    left = max(0, int(completion_tokens))
    reasoning = min(max(0, int(reasoning_tokens or 0)), left)
    left -= reasoning
    audio_out = min(max(0, int(output_audio_tokens or 0)), left)
    return {
        "input": fresh,
        "cached_input": read,
        "cache_write": write,
        "cache_write_1h": write_1h,
        "input_audio": audio_in,
        "output": left - audio_out,
        "reasoning": reasoning,
        "output_audio": audio_out,
    }


@dataclass(slots=True)
class CostLine:
    part: str
    tokens: int
    price: Decimal  # per 1M tokens, in the wallet's currency
    amount: Decimal  # tokens × price / 1M, unrounded

    @property
    def label(self) -> str:
        return PART_LABELS.get(self.part, self.part)

    @property
    def amount_exact(self) -> str:
        """Every digit, so the lines visibly add up (display rounding would hide that)."""
        return _exact(self.amount)


def _exact(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if "." in text else text + ".00"


@dataclass(slots=True)
class CostBreakdown:
    lines: tuple[CostLine, ...]
    per_request: Decimal
    multiplier: Decimal
    upstream: Decimal  # Σ lines + per_request, unrounded: what the upstream's price list says
    cost: Decimal  # upstream × multiplier, rounded once to storage precision: what is charged

    @property
    def upstream_exact(self) -> str:
        return _exact(self.upstream)

    @property
    def charged_exact(self) -> str:
        """upstream × multiplier before the one rounding."""
        return _exact(self.upstream * self.multiplier)


def cost_breakdown(
    *,
    tokens: dict[str, int],
    prices: dict[str, Decimal],
    multiplier: Decimal,
    per_request: Decimal = ZERO,
) -> CostBreakdown:
    """`tokens` from `token_split`; `prices` per part (a missing part with tokens is an error:
    the caller resolves defaults first)."""
    lines = []
    upstream = Decimal(0)
    for part in TOKEN_PARTS:
        count = tokens.get(part, 0)
        if not count and part not in ("input", "output"):
            continue
        price = prices[part]
        amount = (count * price).scaleb(-6)  # / 1,000,000 (TOKENS_PER_PRICE_UNIT), exactly
        upstream += amount
        lines.append(CostLine(part=part, tokens=count, price=price, amount=amount))
    upstream += per_request or ZERO
    return CostBreakdown(
        lines=tuple(lines),
        per_request=per_request or ZERO,
        multiplier=multiplier,
        upstream=upstream,
        cost=to_money(upstream * multiplier),
    )


def breakdown_of_record(record) -> CostBreakdown:
    """The lines a usage record was charged by, from its token columns and price snapshot
    (records written before price parts existed fall back to their three price columns)."""
    parts = record.price_parts if isinstance(record.price_parts, dict) else {}
    prices = {
        "input": record.price_input,
        "output": record.price_output,
        "cached_input": record.price_cached_input,
    }
    for part in TOKEN_PARTS:
        if parts.get(part) is not None:
            prices[part] = Decimal(str(parts[part]))
    for part in TOKEN_PARTS:  # old records: every further class at the plain price
        prices.setdefault(part, prices["output" if part in OUTPUT_PARTS else "input"])
    tokens = token_split(
        prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens,
        cached_tokens=record.cached_tokens,
        cache_write_tokens=record.cache_write_tokens,
        cache_write_1h_tokens=record.cache_write_1h_tokens,
        input_audio_tokens=record.input_audio_tokens,
        reasoning_tokens=record.reasoning_tokens,
        output_audio_tokens=record.output_audio_tokens,
    )
    per_request = Decimal(str(parts.get("per_request") or 0))
    return cost_breakdown(
        tokens=tokens, prices=prices, multiplier=record.price_multiplier, per_request=per_request
    )
