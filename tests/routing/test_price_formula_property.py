"""Property: for random token counts and price parts, the charged amount is the formula
(every class × its part, plus the flat fee, times the multiplier, rounded once), the hold
sized from the same counts covers it, the story page's re-derivation agrees, and the ledger
reconciles after the capture."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.cost_formula import breakdown_of_record
from ledger.money import to_money
from ledger.services.holds import hold_capture, hold_place
from ledger.services.reconcile import reconcile
from routing.pricing import hold_amount, prices_build, usage_cost, usage_record_prices
from routing.providers.base import Usage
from tests.routing.conftest import make_tenant

pytestmark = pytest.mark.django_db

M = Decimal(1_000_000)
price = st.decimals(min_value=0, max_value=200, places=4, allow_nan=False, allow_infinity=False)
maybe_price = st.none() | price
PARTS = (
    "cached_input",
    "cache_write",
    "cache_write_1h",
    "reasoning",
    "input_audio",
    "output_audio",
)


@st.composite
def requests(draw):
    provider = draw(st.sampled_from(["anthropic", "openai", "gemini", "openai-compatible"]))
    base_in, base_out = draw(price), draw(price)
    parts = {part: draw(maybe_price) for part in PARTS}
    parts["per_request"] = draw(maybe_price)
    tiers = []
    if draw(st.booleans()):
        tiers.append(
            {
                "above_input_tokens": draw(st.integers(1, 300_000)),
                "input": str(draw(price)),
                "output": str(draw(price)),
            }
        )
    # Token classes that fit inside their totals, as upstreams report them.
    fresh, read, write5, write1h, audio_in = (draw(st.integers(0, 400_000)) for _ in range(5))
    text_out, reasoning, audio_out = (draw(st.integers(0, 100_000)) for _ in range(3))
    usage = Usage(
        prompt_tokens=fresh + read + write5 + write1h + audio_in,
        completion_tokens=text_out + reasoning + audio_out,
        cached_tokens=read,
        cache_write_tokens=write5,
        cache_write_1h_tokens=write1h,
        input_audio_tokens=audio_in,
        reasoning_tokens=reasoning,
        output_audio_tokens=audio_out,
    )
    multiplier = draw(st.decimals(min_value="0.5", max_value="3", places=4))
    prices = prices_build(
        provider=provider,
        upstream_model=draw(
            st.sampled_from(["claude-sonnet-4-5", "gpt-4o", "o3", "gemini-2.5-pro"])
        ),
        input=base_in,
        output=base_out,
        parts=parts,
        tiers=tiers,
    )
    classes = {
        "input": fresh,
        "cached_input": read,
        "cache_write": write5,
        "cache_write_1h": write1h,
        "input_audio": audio_in,
        "output": text_out,
        "reasoning": reasoning,
        "output_audio": audio_out,
    }
    return prices, usage, multiplier, classes


def _by_hand(prices, usage, multiplier, classes) -> Decimal:
    """The formula written out, independently of the code under test."""
    tier = None
    for t in prices.tiers:
        if usage.prompt_tokens > t.above_input_tokens:
            tier = t
    total = Decimal(0)
    for part, count in classes.items():
        value = prices.part(part)
        if tier is not None:
            anchor = "output" if part in ("output", "reasoning", "output_audio") else "input"
            own = tier.get(part)
            if own is not None:
                value = own
            else:
                new_anchor = tier.get(anchor)
                new_anchor = prices.part(anchor) if new_anchor is None else new_anchor
                if prices.part(anchor):
                    value = to_money(value * new_anchor / prices.part(anchor))
        total += Decimal(count) * value / M
    total += prices.per_request or 0
    return to_money(total * multiplier)


@pytest.mark.parametrize("fast_path", [True, False], ids=["one-statement", "orm"])
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=requests())
def test_the_charge_is_the_formula_the_hold_covers_it_and_the_ledger_reconciles(
    db, fast_path, case
):
    """On both money paths: PostgreSQL's one statement and the ORM (SQLite's path)."""
    from django.test import override_settings

    with override_settings(LEDGER_FAST_PATH=fast_path):
        _check(case)


def _check(case) -> None:
    prices, usage, multiplier, classes = case
    expected = _by_hand(prices, usage, multiplier, classes)
    cost = usage_cost(prices=prices, multiplier=multiplier, usage=usage)
    assert cost == expected
    bound = hold_amount(
        prices=prices,
        multiplier=multiplier,
        prompt_upper=usage.prompt_tokens,
        completion_upper=usage.completion_tokens,
    )
    assert bound >= cost

    tenant = make_tenant(credit=str(bound + 1), rmb="0")
    hold = hold_place(org_id=tenant.org.pk, currency="CREDIT", amount=bound)
    record_prices = usage_record_prices(prices=prices, multiplier=multiplier, usage=usage)
    settled = hold_capture(
        hold_id=hold.pk,
        amount=cost,
        usage={
            "request_id": f"prop-{uuid.uuid4().hex}",
            "model": "m",
            "upstream": "u",
            "wallet": "CREDIT",
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "cache_write_1h_tokens": usage.cache_write_1h_tokens,
            "input_audio_tokens": usage.input_audio_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "output_audio_tokens": usage.output_audio_tokens,
            "price_multiplier": multiplier,
            **record_prices,
        },
    )
    from ledger.models import UsageRecord

    record = UsageRecord.objects.get(pk=settled.usage_record.pk)
    assert record.cost == expected
    assert breakdown_of_record(record).cost == expected  # the story page redoes the same sum
    report = reconcile(org=tenant.org)
    assert report.ok, report.problems
