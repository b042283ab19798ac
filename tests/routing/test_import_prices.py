"""`import_prices FILE [--apply] [--force]`: route prices from LiteLLM's catalog format. Prints
the diff, writes only with --apply (audited), keeps hand-set prices without --force, and the
catalog's context windows and output limits size holds."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from accounts.models import AuditEvent
from routing.catalog import SNAPSHOT
from routing.models import Model, Route
from routing.services import routing_apply

pytestmark = pytest.mark.django_db


def _routes() -> None:
    routing_apply(
        data={
            "upstreams": [
                {"name": "anthropic", "provider": "anthropic", "base_url": "https://a.example"},
                {"name": "relay", "provider": "openai-compatible", "base_url": "http://r/v1"},
                {"name": "rmb", "provider": "openai-compatible", "base_url": "http://c/v1",
                 "wallet": "RMB"},
                {"name": "gem", "provider": "gemini", "base_url": "https://g.example"},
            ],
            "models": [
                {"name": "sonnet", "routes": [
                    # the list price, set by hand: the catalog fills the unset parts
                    {"upstream": "anthropic", "model": "claude-sonnet-4-5",
                     "price": {"input": "3", "output": "15", "cache_write": "3.75"}},
                    # a relay selling at a discount keeps its own prices
                    {"upstream": "relay", "model": "claude-sonnet-4-5",
                     "price": {"input": "2", "output": "10"}},
                    {"upstream": "rmb", "model": "claude-sonnet-4-5",
                     "price": {"input": "20", "output": "100"}},
                ]},
                {"name": "gemini", "routes": [
                    {"upstream": "gem", "model": "gemini-2.5-pro",
                     "price": {"input": "1.25", "output": "10", "cached_input": "0.5"}},
                ]},
                {"name": "local", "routes": [
                    {"upstream": "relay", "model": "my-local-llama",
                     "price": {"input": "0.1", "output": "0.1"}},
                ]},
            ],
        },
        env={},
    )  # fmt: skip


def _run(*args) -> str:
    out = io.StringIO()
    call_command("import_prices", str(SNAPSHOT), *args, stdout=out)
    return out.getvalue()


def test_the_diff_is_printed_and_nothing_is_written_without_apply():
    _routes()
    before = list(Route.objects.values())
    out = _run()
    assert "sonnet → anthropic/claude-sonnet-4-5: cached_input unset -> 0.3" in out
    assert "sonnet → anthropic/claude-sonnet-4-5: cache_write_1h unset -> 6" in out
    assert "gemini → gem/gemini-2.5-pro: cached_input 0.5 -> 0.125 (hand-set: kept" in out
    assert "nothing written" in out
    assert list(Route.objects.values()) == before
    assert not Model.objects.filter(max_output_tokens__isnull=False).exists()


def test_apply_fills_unset_parts_tiers_and_sizes_and_keeps_hand_set_and_relay_prices():
    _routes()
    out = _run("--apply")
    assert "change(s) written" in out
    official = Route.objects.get(upstream__name="anthropic")
    assert official.price_cached_input == Decimal("0.3")
    assert official.price_cache_write_1h == Decimal("6")
    assert official.price_cache_write == Decimal("3.75")  # already the list price
    assert official.context_window == 200000
    assert "cached_input" in official.price_catalog_parts
    assert "cache_write" not in official.price_catalog_parts  # hand-set, unchanged
    relay = Route.objects.get(upstream__name="relay", model__name="sonnet")
    assert (relay.price_input, relay.price_cached_input) == (Decimal("2"), None)
    assert relay.context_window == 200000  # sizes still come from the catalog
    assert Route.objects.get(upstream__name="rmb").price_cached_input is None
    gem = Route.objects.get(upstream__name="gem")
    assert gem.price_cached_input == Decimal("0.5")  # hand-set: kept
    assert gem.price_tiers == [
        {
            "above_input_tokens": 200000,
            "cached_input": "0.25",
            "input": "2.50",
            "output": "15.00",
        }
    ]
    assert Model.objects.get(name="sonnet").max_output_tokens == 64000
    assert Model.objects.get(name="local").max_output_tokens is None  # unknown to the catalog
    assert AuditEvent.objects.filter(action="prices.import").count() == 1
    assert "0 change(s) proposed" in _run()  # applied: nothing left but the kept values


def test_force_overwrites_hand_set_prices():
    _routes()
    _run("--apply", "--force")
    assert Route.objects.get(upstream__name="gem").price_cached_input == Decimal("0.125")
    relay = Route.objects.get(upstream__name="relay", model__name="sonnet")
    assert (relay.price_input, relay.price_output) == (Decimal("3"), Decimal("15"))


def test_catalog_context_window_caps_the_hold_of_a_huge_prompt():
    from routing.selectors import model_entry_get, routing_cache_clear

    _routes()
    _run("--apply")
    routing_cache_clear()
    route = model_entry_get(name="sonnet").routes[0]
    assert route.context_window == 200000


def test_a_missing_or_malformed_catalog_is_refused(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_prices", str(tmp_path / "nope.json"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([1, 2]))
    with pytest.raises(CommandError, match="not a price catalog"):
        call_command("import_prices", str(bad))
