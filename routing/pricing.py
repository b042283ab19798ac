"""Token estimates for usage and rate limits, and a route's prices. Decimal only. (Hold bounds:
routing/request_bounds.py.)

A route's price has parts, each per 1M tokens in its wallet's currency: input, output,
cached_input (cache read), cache_write (5-minute), cache_write_1h, reasoning, input_audio,
output_audio, a flat per_request fee, and tiers that apply above an input size. A part the route
leaves unset follows the provider's published rule (`prices_build`); the record says which.
The arithmetic itself is ledger/cost_formula.py (one formula for charging, the story page and
reconciling an upstream's bill):

    cost = (Σ tokens[part] × price[part] / 1,000,000 + per_request) × price_multiplier
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from ledger.cost_formula import (
    INPUT_PARTS,
    OUTPUT_PARTS,
    CostBreakdown,
    cost_breakdown,
    token_split,
)
from ledger.money import TOKENS_PER_PRICE_UNIT, ZERO, to_money

IMAGE_TOKENS_ESTIMATE = 800  # an image part's typical share of a prompt (estimates only)

OPTIONAL_PARTS = (
    "cached_input",
    "cache_write",
    "cache_write_1h",
    "reasoning",
    "input_audio",
    "output_audio",
)
ALL_PARTS = ("input", "output", *OPTIONAL_PARTS, "per_request")
# Price part -> Route field (input and output are required and handled apart).
PART_FIELDS = {part: f"price_{part}" for part in (*OPTIONAL_PARTS, "per_request")}


@dataclass(frozen=True, slots=True)
class Tier:
    """Prices that replace the base ones when a request's input exceeds `above_input_tokens`
    (every input token counts: fresh, cache reads and writes). Parts it leaves unset keep
    their base proportion to the tier's input (or output) price."""

    above_input_tokens: int
    parts: tuple[tuple[str, Decimal], ...]  # only the parts the tier sets

    def get(self, part: str) -> Decimal | None:
        for name, value in self.parts:
            if name == part:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Prices:
    """A route's prices per 1M tokens, in its wallet currency (a snapshot for the record).
    Built by `prices_build`, every optional part is filled (by the route or by the provider's
    rule, then named in `defaulted`); built by hand, an unset part costs what input (or
    output) does."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    cache_write_1h: Decimal | None = None
    reasoning: Decimal | None = None
    input_audio: Decimal | None = None
    output_audio: Decimal | None = None
    per_request: Decimal | None = None
    tiers: tuple[Tier, ...] = ()
    defaulted: tuple[tuple[str, str], ...] = ()  # (part, the rule that set it)
    # Derived once (the hot path prices every request): every part at each size, and the
    # dearest part per side. Not part of the value (equality, hash).
    _levels: tuple = field(default=(), compare=False, hash=False, repr=False)
    _max: tuple = field(default=(), compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        base = {name: self.part(name) for name in (*INPUT_PARTS, *OUTPUT_PARTS)}
        levels = [(-1, base)]
        levels.extend((t.above_input_tokens, _tier_parts(base, t)) for t in self.tiers)
        levels.sort(key=lambda level: level[0])
        object.__setattr__(self, "_levels", tuple(levels))
        object.__setattr__(
            self,
            "_max",
            (
                max(parts[p] for _, parts in levels for p in INPUT_PARTS),
                max(parts[p] for _, parts in levels for p in OUTPUT_PARTS),
            ),
        )

    @property
    def cached_or_input(self) -> Decimal:
        return self.input if self.cached_input is None else self.cached_input

    def part(self, name: str) -> Decimal:
        value = getattr(self, name)
        if value is None:
            return self.output if name in OUTPUT_PARTS else self.input
        return value

    def base_parts(self) -> dict[str, Decimal]:
        return dict(self._levels[0][1])

    def tier_for(self, input_tokens: int) -> tuple[int | None, dict[str, Decimal]]:
        """(index in `tiers` of the tier that applies or None, the parts at that size): the
        highest threshold the input exceeds."""
        for above, parts in reversed(self._levels):
            if above < 0:
                return None, parts
            if input_tokens > above:
                index = next(i for i, t in enumerate(self.tiers) if t.above_input_tokens == above)
                return index, parts
        return None, self._levels[0][1]


def _tier_parts(base: dict[str, Decimal], tier: Tier) -> dict[str, Decimal]:
    parts = {
        "input": tier.get("input") if tier.get("input") is not None else base["input"],
        "output": tier.get("output") if tier.get("output") is not None else base["output"],
    }
    for group, anchor in ((INPUT_PARTS, "input"), (OUTPUT_PARTS, "output")):
        for name in group:
            if name == anchor:
                continue
            own = tier.get(name)
            if own is not None:
                parts[name] = own
            elif base[anchor]:
                parts[name] = to_money(base[name] * parts[anchor] / base[anchor])
            else:
                parts[name] = base[name]
    return parts


# --- the provider's published rules for parts a route leaves unset ---------------------------

ANTHROPIC_RATIOS = {"cached_input": "0.1", "cache_write": "1.25", "cache_write_1h": "2"}


def _openai_cached_ratio(model: str) -> Decimal:
    """OpenAI's cached-input discount by model family, when the catalog does not know the model."""
    name = model.rsplit("/", 1)[-1].lower()
    if name.startswith("gpt-5"):
        return Decimal("0.1")
    if name.startswith(("gpt-4.1", "o3", "o4")):
        return Decimal("0.25")
    return Decimal("0.5")


def _gemini_cached_ratio(model: str) -> Decimal:
    name = model.rsplit("/", 1)[-1].lower()
    if name.startswith(("gemini-1.", "gemini-2.0")):
        return Decimal("0.25")
    return Decimal("0.1")


def _default_rule(
    part: str, *, provider: str, model: str, entry: dict | None, parts: dict[str, Decimal]
) -> tuple[Decimal, str]:
    """(per-1M price, why) for an unset part."""
    from routing.catalog import entry_ratio

    anchor = "output" if part in OUTPUT_PARTS else "input"
    if provider == "anthropic" and part in ANTHROPIC_RATIOS:
        ratio = Decimal(ANTHROPIC_RATIOS[part])
        return to_money(parts["input"] * ratio), f"{ratio} × input (Anthropic's rule)"
    ratio = entry_ratio(entry, part, of=anchor)
    if ratio is not None:
        return to_money(parts[anchor] * ratio), f"{ratio} × {anchor} (price catalog)"
    if part in ANTHROPIC_RATIOS and model.rsplit("/", 1)[-1].lower().startswith("claude"):
        # a relay serving Claude bills what Anthropic does, unless the catalog says otherwise
        ratio = Decimal(ANTHROPIC_RATIOS[part])
        return to_money(parts["input"] * ratio), f"{ratio} × input (Anthropic's rule for Claude)"
    if part == "cached_input" and provider == "openai":
        ratio = _openai_cached_ratio(model)
        return to_money(parts["input"] * ratio), f"{ratio} × input (OpenAI's rule)"
    if part == "cached_input" and provider == "gemini":
        ratio = _gemini_cached_ratio(model)
        return to_money(parts["input"] * ratio), f"{ratio} × input (Gemini's rule)"
    if part == "cache_write_1h":
        return parts["cache_write"], "= cache_write"
    return parts[anchor], f"= {anchor} (no separate price published)"


def prices_build(
    *,
    provider: str,
    upstream_model: str,
    input: Decimal,  # noqa: A002 - the part's name in routing files
    output: Decimal,
    parts: dict[str, Decimal | None] | None = None,
    tiers: list[dict] | None = None,
) -> Prices:
    """A route's full price: what it sets, and for every optional part it leaves unset the
    provider's rule (Anthropic: cache read 0.1×, 5-minute write 1.25×, 1-hour write 2× input;
    OpenAI and Gemini: the catalog's cached-input price for the model, else the family rule)."""
    from routing.catalog import catalog_entry

    given = {k: v for k, v in (parts or {}).items() if v is not None}
    resolved: dict[str, Decimal] = {"input": input, "output": output}
    defaulted: list[tuple[str, str]] = []
    entry = None
    looked_up = False
    for part in OPTIONAL_PARTS:  # cache_write before cache_write_1h: the latter may follow it
        if part in given:
            resolved[part] = given[part]
            continue
        if not looked_up:
            entry, looked_up = catalog_entry(model=upstream_model, provider=provider), True
        resolved[part], why = _default_rule(
            part, provider=provider, model=upstream_model, entry=entry, parts=resolved
        )
        defaulted.append((part, why))
    return Prices(
        **resolved,
        per_request=given.get("per_request"),
        tiers=tiers_parse(tiers or []),
        defaulted=tuple(defaulted),
    )


def tiers_parse(tiers: list[dict]) -> tuple[Tier, ...]:
    """Stored tiers (`[{above_input_tokens, input: "…", …}]`) to Tier values."""
    out = []
    for tier in tiers:
        parts = tuple(
            (name, Decimal(str(tier[name])))
            for name in (*INPUT_PARTS, *OUTPUT_PARTS)
            if tier.get(name) is not None
        )
        out.append(Tier(above_input_tokens=int(tier["above_input_tokens"]), parts=parts))
    return tuple(sorted(out, key=lambda t: t.above_input_tokens))


# --- what a request costs ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Priced:
    breakdown: CostBreakdown
    tier: int | None
    parts: dict[str, Decimal]  # the per-1M price of every part at this request's size

    @property
    def cost(self) -> Decimal:
        return self.breakdown.cost


def usage_price(*, prices: Prices, multiplier: Decimal, usage) -> Priced:
    """Price a `Usage` (routing.providers.base) by every token class it reports."""
    tokens = token_split(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
        cache_write_tokens=getattr(usage, "cache_write_tokens", 0),
        cache_write_1h_tokens=getattr(usage, "cache_write_1h_tokens", 0),
        input_audio_tokens=getattr(usage, "input_audio_tokens", 0),
        reasoning_tokens=getattr(usage, "reasoning_tokens", 0),
        output_audio_tokens=getattr(usage, "output_audio_tokens", 0),
    )
    tier, parts = prices.tier_for(max(0, usage.prompt_tokens))
    breakdown = cost_breakdown(
        tokens=tokens,
        prices=parts,
        multiplier=multiplier,
        per_request=prices.per_request or ZERO,
    )
    return Priced(breakdown=breakdown, tier=tier, parts=parts)


def usage_cost(*, prices: Prices, multiplier: Decimal, usage) -> Decimal:
    return usage_price(prices=prices, multiplier=multiplier, usage=usage).cost


def usage_record_prices(*, prices: Prices, multiplier: Decimal, usage) -> dict:
    """The usage record's price columns: the three classic ones at this request's size, and
    `price_parts`, the snapshot of every part used ({part: per-1M string}, "defaulted",
    "rules", "tier", "per_request", "upstream_cost") the story page redoes the sum from."""
    priced = usage_price(prices=prices, multiplier=multiplier, usage=usage)
    used = {line.part for line in priced.breakdown.lines}
    snapshot: dict = {part: format(priced.parts[part], "f") for part in sorted(used)}
    rules = {part: why for part, why in prices.defaulted if part in used}
    snapshot["defaulted"] = sorted(rules)
    if rules:
        snapshot["rules"] = rules
    snapshot["tier"] = (
        {"above_input_tokens": prices.tiers[priced.tier].above_input_tokens}
        if priced.tier is not None
        else None
    )
    if prices.per_request:
        snapshot["per_request"] = format(prices.per_request, "f")
    snapshot["upstream_cost"] = format(to_money(priced.breakdown.upstream), "f")
    return {
        "price_input": priced.parts["input"],
        "price_output": priced.parts["output"],
        "price_cached_input": priced.parts["cached_input"],
        "price_parts": snapshot,
    }


def cost_compute(
    *,
    prices: Prices,
    multiplier: Decimal,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int = 0,
) -> Decimal:
    """The cost of plain prompt/completion/cached counts (see `usage_cost` for every class)."""
    from routing.providers.base import Usage

    usage = Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached_tokens=cached_tokens,
    )
    return usage_cost(prices=prices, multiplier=multiplier, usage=usage)


def price_per_token_max(prices: Prices) -> tuple[Decimal, Decimal]:
    """(largest input-side, largest output-side) price per 1M tokens of a route, over every
    part and tier: whatever mix of token classes the upstream reports, no input token costs
    more than the first and no output token more than the second."""
    return prices._max


def hold_amount(
    *, prices: Prices, multiplier: Decimal, prompt_upper: int, completion_upper: int
) -> Decimal:
    """The most this request can cost if the upstream honours max_tokens: every input token at
    the dearest input-side part, every output token at the dearest output-side part."""
    top_in, top_out = price_per_token_max(prices)
    raw = (
        Decimal(max(0, prompt_upper)) * top_in + Decimal(max(0, completion_upper)) * top_out
    ) / TOKENS_PER_PRICE_UNIT + (prices.per_request or ZERO)
    return max(to_money(raw * multiplier), ZERO)


def tokens_estimate(text: str) -> int:
    """A typical tokenizer: ~4 ASCII characters per token, ~1 token per other character."""
    if not text:
        return 0
    ascii_chars = sum(1 for ch in text if ord(ch) < 128)
    return (ascii_chars + 3) // 4 + (len(text) - ascii_chars)


def _texts(value, out: list[str], images: list[int]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list):
        for item in value:
            _texts(item, out, images)
    elif isinstance(value, dict):
        kind = value.get("type")
        if kind in ("image_url", "image", "input_image", "input_audio", "document"):
            images.append(1)
            return
        for key, item in value.items():
            if key in ("type", "role", "cache_control", "id", "tool_call_id"):
                continue
            _texts(item, out, images)


def prompt_texts(body: dict) -> tuple[list[str], int, int]:
    """The text parts of a chat/messages/embeddings request, the image count and message count."""
    out: list[str] = []
    images: list[int] = []
    messages = body.get("messages")
    for key in ("messages", "system", "tools", "functions", "input", "prompt"):
        if key in body:
            _texts(body[key], out, images)
    count = len(messages) if isinstance(messages, list) else 1
    return out, len(images), count


def prompt_tokens_estimate(body: dict) -> int:
    texts, images, messages = prompt_texts(body)
    return (
        sum(tokens_estimate(t) for t in texts) + images * IMAGE_TOKENS_ESTIMATE + messages * 4 + 3
    )
