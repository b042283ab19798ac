"""The real Claude Code (`@anthropic-ai/claude-code` from npm, installed by the test run into
a cache directory reused across runs) pointed at tokenforge under uvicorn, with an
Anthropic-format and an OpenAI-format mock upstream over HTTP, streaming as Claude Code does:
`claude -p "Say hello" --output-format json` prints the model's answer, every request it
sends succeeds, the ledger shows them, and `reconcile` passes.

Skipped (with the reason) only when npm is missing or cannot install the package.
`TF_NPM_CACHE` chooses the cache directory (default var/npm), `TF_CLAUDE_CODE_VERSION` the
version (default the one the fixture was captured from; `latest` to try a new release)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from ledger.models import Account, AccountKind, UsageRecord
from tests.mocks.openai_upstream import TEXT as OPENAI_TEXT
from tests.mocks.openai_upstream import MockOpenAI
from tests.routing.claude_code_support import ReadingAnthropic, ReadingOpenAI, TalkingAnthropic
from tests.routing.conftest import ROOT, _start_gateway, _stop_gateway, apply

pytestmark = pytest.mark.django_db(transaction=True)

VERSION = os.environ.get("TF_CLAUDE_CODE_VERSION", "2.1.328")
NPM_CACHE = Path(os.environ.get("TF_NPM_CACHE", ROOT / "var" / "npm"))
PRICE = {"input": "3", "output": "15"}


def _installed_version(binary: Path) -> str | None:
    if not binary.exists():
        return None
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.split()[0] if out.strip() else None


@pytest.fixture(scope="session")
def claude_cli() -> Path:
    """The `claude` executable, installed from npm once into NPM_CACHE."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: cannot install @anthropic-ai/claude-code")
    prefix = NPM_CACHE / VERSION
    binary = prefix / "node_modules" / ".bin" / "claude"
    if VERSION == "latest" or _installed_version(binary) != VERSION:
        prefix.mkdir(parents=True, exist_ok=True)
        try:
            result = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix),
                 f"@anthropic-ai/claude-code@{VERSION}"],
                capture_output=True, text=True, timeout=600,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            pytest.skip("npm install @anthropic-ai/claude-code timed out after 600 s")
        if result.returncode != 0 or _installed_version(binary) is None:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            pytest.skip(f"npm could not install @anthropic-ai/claude-code@{VERSION}: {tail}")
    return binary


@pytest.fixture(scope="module")
def big_gateway(django_db_setup, django_db_blocker):
    """A gateway taking Claude Code's ~90 KB requests (the shared one caps bodies at 64 KB)."""
    gw = _start_gateway(settings.REDIS_URL, PROXY_MAX_BODY_BYTES=str(8 * 1024 * 1024))
    yield gw
    _stop_gateway(gw)


@pytest.fixture(scope="module")
def _servers():
    servers = {"anthropic": TalkingAnthropic().start(), "openai-compatible": MockOpenAI().start()}
    yield servers
    for server in servers.values():
        server.stop()


def _routes(provider: str, base_url: str) -> None:
    apply(
        [{"name": "up", "provider": provider, "base_url": base_url}],
        [
            {"name": name, "routes": [{"upstream": "up", "model": f"up-{name}", "price": PRICE}]}
            for name in ("claude-sonnet", "claude-haiku")
        ],
    )


def _claude_env(home: Path, gateway_url: str, key: str, auth: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "ANTHROPIC_BASE_URL": gateway_url,
        "ANTHROPIC_MODEL": "claude-sonnet",
        "ANTHROPIC_SMALL_FAST_MODEL": "claude-haiku",
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": "claude-haiku",
        # No telemetry, error reports, update checks or other traffic besides the API.
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_BUG_COMMAND": "1",
    }
    env[auth] = key  # ANTHROPIC_AUTH_TOKEN (Bearer) or ANTHROPIC_API_KEY (x-api-key)
    return env


def _credit(org) -> Decimal:
    return Account.objects.get(org=org, currency="CREDIT", kind=AccountKind.WALLET).posted


@pytest.mark.parametrize(
    ("provider", "auth", "answer"),
    [
        ("anthropic", "ANTHROPIC_AUTH_TOKEN", TalkingAnthropic.text),
        ("anthropic", "ANTHROPIC_API_KEY", TalkingAnthropic.text),
        ("openai-compatible", "ANTHROPIC_AUTH_TOKEN", OPENAI_TEXT),
    ],
)
def test_claude_code_says_hello_through_tokenforge_and_the_ledger_shows_it(
    claude_cli, big_gateway, _servers, tenant, tmp_path, provider, auth, answer
):
    upstream = _servers[provider]
    upstream.reset()
    _routes(provider, upstream.base_url)
    before = _credit(tenant.org)
    work = tmp_path / "project"
    work.mkdir()
    result = subprocess.run(
        [str(claude_cli), "-p", "Say hello", "--output-format", "json"],
        cwd=work,
        env=_claude_env(tmp_path, big_gateway.url, tenant.key, auth),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, f"claude failed:\n{result.stdout}\n{result.stderr}"
    output = json.loads(result.stdout)
    assert output["is_error"] is False and output["subtype"] == "success"
    assert output["result"] == answer  # the model's answer, printed by Claude Code

    # Every request Claude Code sent reached the upstream and was settled and charged.
    generations = [r for r in upstream.requests if not r["path"].endswith("/count_tokens")]
    assert generations, "Claude Code sent no request"
    assert all(r["body"].get("stream") for r in generations)  # Claude Code streams
    records = list(UsageRecord.objects.filter(org=tenant.org).order_by("created_at"))
    assert len(records) == len(generations)
    assert {r.status for r in records} == {"settled"}
    assert {r.endpoint for r in records} == {"messages"}
    assert {r.model for r in records} <= {"claude-sonnet", "claude-haiku"}
    assert all(r.cost > 0 for r in records)
    assert before - _credit(tenant.org) == sum(r.cost for r in records)
    if provider == "anthropic":
        sent = generations[-1]
        assert any(m.get("role") == "system" for m in sent["body"]["messages"])
        assert "context-management-2025-06-27" in sent["headers"]["anthropic-beta"]
        assert sent["headers"]["x-claude-code-session-id"] == output["session_id"]
        assert all(r.dropped == [] for r in records)
    else:
        sent = generations[-1]["body"]
        assert sent["messages"][-1]["role"] == "system"  # Claude Code's mid-conversation one
        assert sent["reasoning_effort"] in ("low", "medium", "high")
        assert "context_management" in records[-1].dropped

    out = StringIO()
    call_command("reconcile", stdout=out)
    assert "every invariant holds" in out.getvalue()


@pytest.mark.parametrize("provider", ["anthropic", "openai-compatible"])
def test_claude_code_runs_a_tool_round_trip_through_tokenforge(
    claude_cli, big_gateway, tenant, tmp_path, provider
):
    """The model asks for `Read`, Claude Code runs it and sends the tool result back: both
    turns pass through the gateway (translated on the OpenAI-format upstream)."""
    work = tmp_path / "project"
    work.mkdir()
    notes = work / "notes.txt"
    notes.write_text("PURPLE-OTTER-42\n")
    upstream = (ReadingAnthropic if provider == "anthropic" else ReadingOpenAI)()
    upstream.path = str(notes)
    upstream.start()
    try:
        _routes(provider, upstream.base_url)
        result = subprocess.run(
            [str(claude_cli), "-p", "What does notes.txt say?", "--output-format", "json",
             "--allowedTools", "Read"],
            cwd=work,
            env=_claude_env(tmp_path, big_gateway.url, tenant.key, "ANTHROPIC_AUTH_TOKEN"),
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    finally:
        upstream.stop()
    assert result.returncode == 0, f"claude failed:\n{result.stdout}\n{result.stderr}"
    output = json.loads(result.stdout)
    assert output["is_error"] is False
    assert "PURPLE-OTTER-42" in output["result"]
    generations = [r for r in upstream.requests if not r["path"].endswith("/count_tokens")]
    assert len(generations) >= 2  # the tool call, then the answer to its result
    records = UsageRecord.objects.filter(org=tenant.org)
    assert records.count() == len(generations)
    assert {r.status for r in records} == {"settled"}
    out = StringIO()
    call_command("reconcile", stdout=out)
    assert "every invariant holds" in out.getvalue()
