"""The routing file, the export and the admin take every price part and long-context tiers;
files with only input/output/cached_input keep working; unset parts follow the provider's
rule and are named as defaulted; holds bound the dearest part."""

from __future__ import annotations

from decimal import Decimal

import pytest
import yaml

from routing.models import Route
from routing.pricing import Prices, hold_amount, price_per_token_max, prices_build
from routing.selectors import model_entry_get, routing_cache_clear
from routing.services import RoutingFileError, routing_apply, routing_export

pytestmark = pytest.mark.django_db

FILE = """
upstreams:
  - {name: claude, provider: anthropic, base_url: "https://api.anthropic.com", wallet: CREDIT}
  - {name: relay, provider: openai-compatible, base_url: "http://127.0.0.1:9/v1", wallet: RMB}
models:
  - name: claude-sonnet
    routes:
      - upstream: claude
        model: claude-sonnet-4-5
        price:
          input: "3"
          output: "15"
          cache_write_1h: "6"
          per_request: "0.001"
          tiers:
            - {above_input_tokens: 200000, input: "6", output: "22.5"}
      - upstream: relay
        model: claude-sonnet-4-5
        price: {input: "20", output: "100", cached_input: "2"}
"""


def _apply(text: str = FILE) -> dict:
    return routing_apply(data=yaml.safe_load(text), env={})


def test_every_price_part_and_tier_is_stored_and_exported_back_as_written():
    _apply()
    route = Route.objects.get(upstream__name="claude")
    assert route.price_cache_write_1h == Decimal("6") and route.price_per_request == Decimal(
        "0.001"
    )
    assert route.price_cache_write is None and route.price_cached_input is None
    assert route.price_tiers == [{"above_input_tokens": 200000, "input": "6.00", "output": "22.50"}]
    exported = routing_export()
    price = exported["models"][0]["routes"][0]["price"]
    assert price == {
        "input": "3.00",
        "output": "15.00",
        "cache_write_1h": "6.00",
        "per_request": "0.001",
        "tiers": [{"above_input_tokens": 200000, "input": "6.00", "output": "22.50"}],
    }
    assert exported["models"][0]["routes"][1]["price"] == {
        "input": "20.00",
        "output": "100.00",
        "cached_input": "2.00",
    }
    assert _apply(yaml.safe_dump(exported)) == {"created": 0, "updated": 0, "disabled": 0}


def test_unset_parts_follow_the_providers_rule_and_are_named_as_defaulted():
    _apply()
    routing_cache_clear()
    claude, relay = model_entry_get(name="claude-sonnet").routes
    prices = claude.prices
    assert prices.cached_input == Decimal("0.3")  # Anthropic: 0.1 × input
    assert prices.cache_write == Decimal("3.75")  # 1.25 × input
    assert prices.cache_write_1h == Decimal("6")  # set by the route
    assert dict(prices.defaulted)["cache_write"] == "1.25 × input (Anthropic's rule)"
    assert "cache_write_1h" not in dict(prices.defaulted)
    # A relay is not Anthropic, but the catalog knows the model: its writes keep the list's
    # proportion (1.25 × the relay's own input price); its hand-set cache read stays.
    assert relay.prices.cache_write == Decimal("25") and relay.prices.cached_input == Decimal("2")
    assert dict(relay.prices.defaulted)["cache_write"] == "1.25 × input (price catalog)"


def test_openai_and_gemini_cached_input_follow_the_catalog_then_the_family_rule():
    def cached(provider: str, model: str) -> Decimal:
        return prices_build(
            provider=provider, upstream_model=model, input=Decimal("10"), output=Decimal("40")
        ).cached_input

    assert cached("openai", "gpt-4o") == Decimal("5")  # catalog: 1.25e-6 / 2.5e-6
    assert cached("openai", "gpt-4.1") == Decimal("2.5")  # catalog: 0.25×
    assert cached("openai", "gpt-5") == Decimal("1")  # catalog: 0.1×
    assert cached("openai", "gpt-5-unknown-future") == Decimal("1")  # family rule
    assert cached("gemini", "gemini-2.5-pro") == Decimal("1")  # catalog (gemini/ prefix)
    assert cached("openai-compatible", "openai/gpt-4o") == Decimal("5")  # relay's vendor prefix
    assert cached("openai-compatible", "some-local-model") == Decimal("10")  # no rule: input
    # a relay's Claude model the catalog does not know still follows Anthropic's rule
    relay_claude = prices_build(
        provider="openai-compatible",
        upstream_model="anthropic/claude-sonnet-4-20250514",
        input=Decimal("10"),
        output=Decimal("40"),
    )
    assert (relay_claude.cached_input, relay_claude.cache_write) == (Decimal("1"), Decimal("12.5"))


def test_a_file_with_only_the_old_parts_keeps_working():
    _apply(
        """
upstreams: [{name: r, provider: openai-compatible, base_url: "http://127.0.0.1:9/v1"}]
models:
  - name: m
    routes: [{upstream: r, model: m, price: {input: "1.05", output: "4.20", cached_input: "0.5"}}]
"""
    )
    route = Route.objects.get()
    assert (route.price_input, route.price_cached_input) == (Decimal("1.05"), Decimal("0.5"))
    assert route.price_tiers == [] and route.price_cache_write is None


@pytest.mark.parametrize(
    ("price", "message"),
    [
        ({"input": "1", "output": "2", "cache_read": "1"}, "unknown price part(s) cache_read"),
        ({"input": "1", "output": "2", "cache_write": 1.5}, "not floats"),
        ({"input": "1", "output": "2", "reasoning": "-1"}, "cannot be negative"),
        ({"input": "1", "output": "2", "tiers": [{"input": "2"}]}, "above_input_tokens"),
        (
            {"input": "1", "output": "2", "tiers": [{"above_input_tokens": 5, "per_request": "1"}]},
            "unknown price part(s) per_request",
        ),
    ],
)
def test_a_bad_price_part_is_refused_with_a_clear_message(price, message):
    data = {
        "upstreams": [{"name": "r", "provider": "openai", "base_url": "http://x/v1"}],
        "models": [{"name": "m", "routes": [{"upstream": "r", "price": price}]}],
    }
    with pytest.raises(RoutingFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        routing_apply(data=data, env={})
    assert not Route.objects.exists()


def test_the_hold_prices_every_token_at_the_dearest_part_of_its_side():
    prices = prices_build(
        provider="anthropic",
        upstream_model="claude-x",
        input=Decimal("3"),
        output=Decimal("15"),
        parts={"reasoning": Decimal("20"), "per_request": Decimal("0.01")},
        tiers=[{"above_input_tokens": 200000, "input": "6", "output": "22.5"}],
    )
    # input side: the tier's 1-hour write (2 × 6); output side: reasoning 20 scaled to 30.
    assert price_per_token_max(prices) == (Decimal("12"), Decimal("30"))
    amount = hold_amount(
        prices=prices, multiplier=Decimal("1.5"), prompt_upper=1000, completion_upper=100
    )
    assert amount == (Decimal(1000) * 12 + Decimal(100) * 30) / 1_000_000 * Decimal("1.5") + (
        Decimal("0.01") * Decimal("1.5")
    )
    plain = Prices(input=Decimal("1"), output=Decimal("2"))
    assert price_per_token_max(plain) == (Decimal("1"), Decimal("2"))


def test_the_admin_edits_price_parts_and_refuses_a_bad_tier(admin_client):
    _apply()
    route = Route.objects.get(upstream__name="claude")
    route.price_catalog_parts = ["cached_input", "cache_write"]
    route.save()
    url = f"/admin/routing/route/{route.pk}/change/"
    page = admin_client.get(url)
    assert page.status_code == 200 and "price_cache_write_1h" in page.content.decode()
    form = {
        "model": route.model_id,
        "upstream": route.upstream_id,
        "upstream_model": route.upstream_model,
        "position": 0,
        "weight": 1,
        "enabled": "on",
        "price_input": "3",
        "price_output": "15",
        "price_cache_write": "4",
        "price_cache_write_1h": "6",
        "price_per_request": "0.001",
        "price_tiers": '[{"above_input_tokens": 200000, "input": "6"}]',
    }
    response = admin_client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    route.refresh_from_db()
    assert route.price_cache_write == Decimal("4")
    assert route.price_catalog_parts == ["cached_input"]  # the edited part is hand-set now
    bad = admin_client.post(url, {**form, "price_tiers": '[{"input": "6"}]'})
    assert bad.status_code == 200 and "above_input_tokens" in bad.content.decode()
