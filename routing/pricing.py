"""Token counting for holds and estimates, and the cost arithmetic. Decimal only.

cost = ((prompt - cached) × price_input + cached × price_cached_input + completion × price_output)
       / 1,000,000 × the organization's price_multiplier
(`price_cached_input` falls back to `price_input` when a route sets none.)
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ledger.money import TOKENS_PER_PRICE_UNIT, ZERO, to_money

IMAGE_TOKENS_UPPER = 1600  # an image part counts this much toward the hold's upper bound
PER_MESSAGE_OVERHEAD = 8  # role markers and separators a chat template adds per message


@dataclass(frozen=True, slots=True)
class Prices:
    """A route's prices per 1M tokens, in its wallet currency (a snapshot for the record)."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None

    @property
    def cached_or_input(self) -> Decimal:
        return self.input if self.cached_input is None else self.cached_input


def cost_compute(
    *,
    prices: Prices,
    multiplier: Decimal,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int = 0,
) -> Decimal:
    cached = max(0, min(cached_tokens, prompt_tokens))
    raw = (
        Decimal(prompt_tokens - cached) * prices.input
        + Decimal(cached) * prices.cached_or_input
        + Decimal(completion_tokens) * prices.output
    )
    return to_money(raw / TOKENS_PER_PRICE_UNIT * multiplier)


def hold_amount(
    *, prices: Prices, multiplier: Decimal, prompt_upper: int, completion_upper: int
) -> Decimal:
    """The most this request can cost if the upstream honours max_tokens."""
    amount = cost_compute(
        prices=prices,
        multiplier=multiplier,
        prompt_tokens=prompt_upper,
        completion_tokens=completion_upper,
    )
    return max(amount, ZERO)


def tokens_estimate(text: str) -> int:
    """A typical tokenizer: ~4 ASCII characters per token, ~1 token per other character."""
    if not text:
        return 0
    ascii_chars = sum(1 for ch in text if ord(ch) < 128)
    return (ascii_chars + 3) // 4 + (len(text) - ascii_chars)


def tokens_upper_bound(text: str) -> int:
    """Deliberately generous (half the UTF-8 bytes): a hold must not be smaller than the cost."""
    if not text:
        return 0
    return (len(text.encode("utf-8")) + 1) // 2 + 1


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


def prompt_tokens_upper(body: dict) -> int:
    texts, images, messages = prompt_texts(body)
    return (
        sum(tokens_upper_bound(t) for t in texts)
        + images * IMAGE_TOKENS_UPPER
        + messages * PER_MESSAGE_OVERHEAD
        + 8
    )


def prompt_tokens_estimate(body: dict) -> int:
    texts, images, messages = prompt_texts(body)
    return (
        sum(tokens_estimate(t) for t in texts)
        + images * (IMAGE_TOKENS_UPPER // 2)
        + messages * 4
        + 3
    )
