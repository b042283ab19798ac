"""The real Codex CLI (`@openai/codex` 0.169.0 from npm) pointed at the gateway: a custom
provider in a temporary CODEX_HOME whose base_url is tokenforge's /v1 and wire_api is
"responses". `codex exec "Say hello"` prints the model's answer, the ledger shows its
requests on the Responses endpoint, and reconcile passes; against an OpenAI-format relay
and an Anthropic-format mock upstream over HTTP."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from django.conf import settings
from django.core.management import call_command

from ledger.models import UsageRecord
from tests.mocks.anthropic_upstream import TEXT as ANTHROPIC_TEXT
from tests.mocks.anthropic_upstream import MockAnthropic
from tests.mocks.openai_upstream import TEXT as OPENAI_TEXT
from tests.mocks.openai_upstream import MockOpenAI
from tests.npm_clients import npm_client
from tests.routing.conftest import _start_gateway, _stop_gateway, apply

pytestmark = pytest.mark.django_db(transaction=True)

CODEX_VERSION = "0.169.0"


@pytest.fixture(scope="module")
def codex_bin():
    return npm_client("@openai/codex", CODEX_VERSION, "codex")


@pytest.fixture(scope="module")
def big_gateway(django_db_setup, django_db_blocker):
    """Codex's first request carries ~25 KB of instructions and tools: the default body limit."""
    gw = _start_gateway(settings.REDIS_URL, PROXY_MAX_BODY_BYTES=str(8 * 1024 * 1024))
    yield gw
    _stop_gateway(gw)


def _codex(codex_bin, gateway, key: str, tmp_path) -> subprocess.CompletedProcess:
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(
        'model = "gpt-4o-mini"\n'
        'model_provider = "tokenforge"\n'
        "\n"
        "[model_providers.tokenforge]\n"
        'name = "tokenforge"\n'
        f'base_url = "{gateway.url}/v1"\n'
        'env_key = "TOKENFORGE_API_KEY"\n'
        'wire_api = "responses"\n'
    )
    work = tmp_path / "work"
    work.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "CODEX_HOME": str(home),
        "TOKENFORGE_API_KEY": key,
        "NO_COLOR": "1",
    }
    return subprocess.run(
        [str(codex_bin), "exec", "--skip-git-repo-check", "Say hello"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def _relay():
    server = MockOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def _claude():
    server = MockAnthropic().start()
    yield server
    server.stop()


def _route(name: str, provider: str, base_url: str) -> None:
    apply(
        [{"name": name, "provider": provider, "base_url": base_url}],
        [
            {
                "name": "gpt-4o-mini",
                "routes": [
                    {"upstream": name, "model": "up-model", "price": {"input": "1", "output": "4"}}
                ],
            }
        ],
    )


def _check(result, tenant, answer: str, upstream_requests: list[dict]) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
    assert answer in result.stdout, (result.stdout[-2000:], result.stderr[-2000:])
    records = UsageRecord.objects.filter(org=tenant.org)
    assert records.count() >= 1
    assert all(r.endpoint == "responses" and r.status == "settled" for r in records)
    assert records.count() == len(upstream_requests)
    # Codex always offers web_search; a translated upstream cannot run it: named as dropped.
    assert all("web_search" in r.dropped for r in records)
    call_command("reconcile")


def test_codex_exec_says_hello_through_an_openai_format_relay(
    codex_bin, big_gateway, _relay, tenant, tmp_path
):
    _relay.reset()
    _route("relay-codex", "openai-compatible", _relay.base_url)
    result = _codex(codex_bin, big_gateway, tenant.key, tmp_path)
    requests = [r for r in _relay.requests if r["path"].endswith("/chat/completions")]
    _check(result, tenant, OPENAI_TEXT, requests)
    sent = requests[0]["body"]
    names = {t["function"]["name"] for t in sent["tools"]}
    assert "exec_command" in names and "multi_agent_v1__spawn_agent" in names
    assert "_responses" not in sent and sent["stream"] is True


def test_codex_exec_says_hello_through_an_anthropic_format_upstream(
    codex_bin, big_gateway, _claude, tenant, tmp_path
):
    _claude.reset()
    _claude.call_tools = False  # the mock would otherwise call Codex's first tool
    _route("claude-codex", "anthropic", _claude.base_url)
    result = _codex(codex_bin, big_gateway, tenant.key, tmp_path)
    requests = [r for r in _claude.requests if r["path"] == "/v1/messages"]
    _check(result, tenant, ANTHROPIC_TEXT, requests)
    sent = requests[0]["body"]
    assert sent["system"] and sent["messages"][-1]["role"] == "user"
    assert "Say hello" in json.dumps(sent["messages"])
