from __future__ import annotations

import io
from decimal import Decimal

import pytest
import yaml
from django.core.management import CommandError, call_command

from routing.models import Model, Route, Upstream
from routing.services import RoutingFileError, routing_apply

pytestmark = pytest.mark.django_db

FILE = """
upstreams:
  - name: relay-a
    provider: openai-compatible
    base_url: http://127.0.0.1:9101/v1
    api_key_env: RELAY_A_KEY
    wallet: RMB
    timeout: 60
  - name: openai-official
    provider: openai
    base_url: https://api.openai.com/v1
    api_key_env: OPENAI_KEY
    wallet: CREDIT
    timeout: 30
models:
  - name: gpt-4o-mini
    routes:
      - upstream: relay-a
        model: gpt-4o-mini
        price: {input: "1.05", output: "4.20"}
      - upstream: openai-official
        model: gpt-4o-mini
        price: {input: "0.15", output: "0.60", cached_input: "0.075"}
"""


@pytest.fixture
def routing_file(tmp_path, monkeypatch):
    monkeypatch.setenv("RELAY_A_KEY", "sk-relay-secret")
    monkeypatch.setenv("OPENAI_KEY", "sk-openai-secret")
    path = tmp_path / "routing.yaml"
    path.write_text(FILE)
    return path


def test_apply_creates_upstreams_models_and_ordered_routes_with_encrypted_secrets(routing_file):
    call_command("apply_routing", str(routing_file), stdout=io.StringIO())
    relay = Upstream.objects.get(name="relay-a")
    assert relay.wallet == "RMB" and relay.timeout == 60 and relay.provider == "openai-compatible"
    assert relay.api_key == "sk-relay-secret"
    assert "sk-relay-secret" not in relay.api_key_encrypted
    routes = list(Route.objects.filter(model__name="gpt-4o-mini").order_by("position"))
    assert [r.upstream.name for r in routes] == ["relay-a", "openai-official"]
    assert routes[0].price_input == Decimal("1.05") and routes[0].price_cached_input is None
    assert routes[1].price_cached_input == Decimal("0.075")


def test_applying_the_same_file_twice_changes_nothing(routing_file):
    call_command("apply_routing", str(routing_file), stdout=io.StringIO())
    stamps = {u.name: u.updated_at for u in Upstream.objects.all()}
    out = io.StringIO()
    call_command("apply_routing", str(routing_file), stdout=out)
    assert "created 0, updated 0, disabled 0" in out.getvalue()
    assert stamps == {u.name: u.updated_at for u in Upstream.objects.all()}


def test_what_the_file_no_longer_names_is_disabled_not_deleted(routing_file, monkeypatch):
    call_command("apply_routing", str(routing_file), stdout=io.StringIO())
    data = yaml.safe_load(FILE)
    data["upstreams"] = data["upstreams"][1:]
    data["models"][0]["routes"] = data["models"][0]["routes"][1:]
    routing_apply(data=data, env={"OPENAI_KEY": "sk-openai-secret"})
    relay = Upstream.objects.get(name="relay-a")
    assert not relay.enabled and relay.disabled_reason
    assert Route.objects.filter(upstream=relay, enabled=False).count() == 1
    routing_apply(data={"upstreams": [], "models": []}, env={})
    assert not Model.objects.get(name="gpt-4o-mini").enabled


def test_export_writes_the_same_file_back_without_secrets(routing_file):
    call_command("apply_routing", str(routing_file), stdout=io.StringIO())
    out = io.StringIO()
    call_command("export_routing", stdout=out)
    text = out.getvalue()
    assert "sk-" not in text
    exported = yaml.safe_load(text)
    original = yaml.safe_load(FILE)
    assert [m["routes"] for m in exported["models"]] == [m["routes"] for m in original["models"]]
    assert {u["name"]: u["wallet"] for u in exported["upstreams"]} == {
        "relay-a": "RMB",
        "openai-official": "CREDIT",
    }
    assert all("api_key_env" in u for u in exported["upstreams"])
    # applying the export (secrets from its env names) changes nothing
    env = {
        u["api_key_env"]: s
        for u, s in zip(exported["upstreams"], ["sk-openai-secret", "sk-relay-secret"], strict=True)
    }
    assert routing_apply(data=exported, env=env) == {"created": 0, "updated": 0, "disabled": 0}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["upstreams"][0].update(provider="nope"), "provider"),
        (lambda d: d["upstreams"][0].update(wallet="USD"), "wallet"),
        (lambda d: d["upstreams"][0].update(api_key_env="MISSING_VAR_X"), "MISSING_VAR_X"),
        (lambda d: d["models"][0]["routes"][0].update(upstream="ghost"), "upstream"),
        (lambda d: d["models"][0]["routes"][0]["price"].update(input=1.05), "strings"),
        (lambda d: d["models"][0]["routes"][0]["price"].update(input="-1"), "negative"),
    ],
)
def test_an_invalid_file_is_refused_with_a_clear_message_and_nothing_applied(mutate, message):
    data = yaml.safe_load(FILE)
    mutate(data)
    with pytest.raises(RoutingFileError, match=message):
        routing_apply(data=data, env={"RELAY_A_KEY": "a", "OPENAI_KEY": "b"})
    assert not Upstream.objects.exists()


def test_the_command_fails_cleanly_on_a_missing_file():
    with pytest.raises(CommandError, match="cannot read"):
        call_command("apply_routing", "/nonexistent/routing.yaml")
