"""Claude Code 2.1.328's first request (the captured fixture, at full size) on
`/v1/messages?beta=true`: forwarded as sent to an Anthropic upstream; translated to
OpenAI-format and Gemini upstreams with mid-conversation system messages in place, thinking
and effort as the upstream's reasoning setting, and server-side features dropped and named
(`x-tokenforge-dropped`, `UsageRecord.dropped`), never a 400. Driven with raw HTTP (the exact
headers Claude Code sends) and with the official `anthropic` SDK, streamed and not."""

from __future__ import annotations

import asyncio
import json
import uuid

import anthropic
import httpx
import pytest
from django.conf import settings

from ledger.models import UsageRecord
from tests.mocks.gemini_upstream import MockGemini
from tests.mocks.openai_upstream import TEXT as OPENAI_TEXT
from tests.mocks.openai_upstream import MockOpenAI
from tests.routing.claude_code_support import (
    NoReasoningOpenAI,
    TalkingAnthropic,
    claude_code_request,
)
from tests.routing.conftest import _start_gateway, _stop_gateway, apply

pytestmark = pytest.mark.django_db(transaction=True)

PRICE = {"input": "3", "output": "15"}
SESSION = "0b6c7a52-3f3c-4d8e-9a51-2f3a5c1d9e10"
DROPPED_ON_TRANSLATED = [
    "context_management",
    "tools.DeferredToolPlaceholder",
]


@pytest.fixture(scope="module")
def big_gateway(django_db_setup, django_db_blocker):
    """A gateway taking Claude Code's ~100 KB requests (the shared one caps bodies at 64 KB)."""
    gw = _start_gateway(settings.REDIS_URL, PROXY_MAX_BODY_BYTES=str(8 * 1024 * 1024))
    yield gw
    _stop_gateway(gw)


@pytest.fixture(scope="module")
def _servers():
    servers = {
        "anthropic": TalkingAnthropic().start(),
        "openai-compatible": MockOpenAI().start(),
        "gemini": MockGemini().start(),
    }
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def servers(_servers):
    for server in _servers.values():
        server.reset()
    return _servers


def _route(provider: str, servers) -> None:
    apply(
        [{"name": "up", "provider": provider, "base_url": servers[provider].base_url}],
        [
            {
                "name": "claude-sonnet",
                "routes": [{"upstream": "up", "model": "up-model", "price": PRICE}],
            }
        ],
    )


def _post_as_claude_code(gateway, key: str, body: dict) -> httpx.Response:
    request = claude_code_request()
    headers = {
        **request["headers"],
        "authorization": f"Bearer {key}",
        "x-claude-code-session-id": SESSION,
        "Accept-Encoding": "identity",
    }
    return httpx.post(
        gateway.url + request["path"], content=json.dumps(body), headers=headers, timeout=30
    )


def _events(response: httpx.Response) -> list[dict]:
    return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]


def _streamed_text(events: list[dict]) -> str:
    return "".join(
        e["delta"].get("text", "")
        for e in events
        if e.get("type") == "content_block_delta" and isinstance(e.get("delta"), dict)
    )


def test_the_claude_code_request_reaches_an_anthropic_upstream_exactly_as_sent(
    big_gateway, servers, tenant
):
    _route("anthropic", servers)
    body = claude_code_request()["body"]
    response = _post_as_claude_code(big_gateway, tenant.key, body)
    assert response.status_code == 200, response.text
    events = _events(response)
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    assert events[0]["message"]["model"] == "claude-sonnet"
    assert _streamed_text(events) == TalkingAnthropic.text
    assert "x-tokenforge-dropped" not in response.headers

    sent = servers["anthropic"].requests[-1]
    assert sent["path"] == "/v1/messages"
    assert sent["body"] == {**body, "model": "up-model"}  # every field, unknown ones too
    wanted = claude_code_request()["headers"]
    assert sent["headers"]["anthropic-beta"] == wanted["anthropic-beta"]
    assert sent["headers"]["anthropic-version"] == wanted["anthropic-version"]
    assert sent["headers"]["x-claude-code-session-id"] == SESSION
    assert tenant.key not in json.dumps(sent["headers"])

    record = UsageRecord.objects.get(request_id=response.headers["x-request-id"])
    assert record.endpoint == "messages" and record.status == "settled" and record.stream
    assert record.dropped == []
    assert record.cost > 0


def test_a_new_field_from_a_future_claude_code_passes_through_to_anthropic(
    big_gateway, servers, tenant
):
    _route("anthropic", servers)
    body = {**claude_code_request()["body"], "stream": False, "speed": "fast"}
    body["tools"] = [*body["tools"], {"type": "tool_search_tool_regex_20251119", "name": "ts"}]
    response = _post_as_claude_code(big_gateway, tenant.key, body)
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == TalkingAnthropic.text
    sent = servers["anthropic"].requests[-1]["body"]
    assert sent["speed"] == "fast" and sent["tools"][-1]["name"] == "ts"


@pytest.mark.parametrize("provider", ["openai-compatible", "gemini"])
def test_the_claude_code_request_is_translated_and_names_what_it_drops(
    big_gateway, servers, tenant, provider
):
    _route(provider, servers)
    body = claude_code_request()["body"]
    response = _post_as_claude_code(big_gateway, tenant.key, body)
    assert response.status_code == 200, response.text
    events = _events(response)
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    assert _streamed_text(events) or any(
        e.get("content_block", {}).get("type") == "tool_use" for e in events
    )
    assert response.headers["x-tokenforge-dropped"] == ", ".join(DROPPED_ON_TRANSLATED)
    sent = servers[provider].requests[-1]
    assert "anthropic-beta" not in sent["headers"]
    assert "x-claude-code-session-id" not in sent["headers"]
    top_system = "\n\n".join(b["text"] for b in body["system"])
    mid_system = body["messages"][1]["content"][0]["text"]
    names = [t["name"] for t in body["tools"] if not t.get("defer_loading")]
    if provider == "openai-compatible":
        messages = sent["body"]["messages"]
        assert [m["role"] for m in messages] == ["system", "user", "system"]
        assert messages[0]["content"] == top_system
        assert messages[2]["content"] == mid_system  # in place, after the user's turn
        assert sent["body"]["reasoning_effort"] == "high"  # output_config.effort
        assert sent["body"]["max_tokens"] == 32000
        assert sent["body"]["user"] == body["metadata"]["user_id"]
        assert [t["function"]["name"] for t in sent["body"]["tools"]] == names
        assert "context_management" not in sent["body"]
        assert "thinking" not in sent["body"] and "output_config" not in sent["body"]
    else:
        request = sent["body"]
        assert request["systemInstruction"]["parts"][0]["text"] == top_system + "\n\n" + mid_system
        assert request["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 24576}
        assert request["generationConfig"]["maxOutputTokens"] == 32000
        declared = [d["name"] for t in request["tools"] for d in t["functionDeclarations"]]
        assert declared == names
    record = UsageRecord.objects.get(request_id=response.headers["x-request-id"])
    assert record.status == "settled" and record.cost > 0
    assert record.dropped == DROPPED_ON_TRANSLATED


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("provider", ["anthropic", "openai-compatible", "gemini"])
def test_the_anthropic_sdk_sends_claude_codes_shapes_on_every_upstream_kind(
    big_gateway, servers, tenant, provider, stream
):
    _route(provider, servers)
    body = claude_code_request()["body"]
    client = anthropic.Anthropic(
        base_url=big_gateway.url,
        auth_token=tenant.key,
        api_key=None,
        max_retries=0,
        default_headers={"x-claude-code-session-id": SESSION},
    )
    kwargs = {
        "model": body["model"],
        "max_tokens": body["max_tokens"],
        "system": body["system"],
        "messages": body["messages"],
        "tools": body["tools"],
        "metadata": body["metadata"],
        "thinking": body["thinking"],
        "output_config": body["output_config"],
        "context_management": body["context_management"],
        "betas": claude_code_request()["headers"]["anthropic-beta"].split(","),
    }
    if stream:
        with client.beta.messages.stream(**kwargs) as s:
            message = s.get_final_message()
            headers = s.response.headers
    else:
        raw = client.beta.messages.with_raw_response.create(**kwargs, timeout=60)
        message, headers = raw.parse(), raw.headers
    assert message.model == "claude-sonnet"
    text = "".join(b.text for b in message.content if b.type == "text")
    assert text or message.stop_reason == "tool_use"
    if provider == "anthropic":
        assert text == TalkingAnthropic.text
        sent = servers[provider].requests[-1]
        assert sent["body"]["context_management"] == body["context_management"]
        assert sent["body"]["messages"][1]["role"] == "system"
        assert "x-tokenforge-dropped" not in headers
    else:
        assert headers["x-tokenforge-dropped"] == ", ".join(DROPPED_ON_TRANSLATED)
    assert message.usage.output_tokens > 0
    record = UsageRecord.objects.get(request_id=headers["x-request-id"])
    assert record.stream is stream and record.status == "settled"


@pytest.mark.parametrize("provider", ["anthropic", "openai-compatible", "gemini"])
def test_count_tokens_answers_the_claude_code_request_on_every_route(
    big_gateway, servers, tenant, provider
):
    _route(provider, servers)
    body = claude_code_request()["body"]
    count_body = {k: body[k] for k in ("model", "messages", "system", "tools", "thinking")}
    count_body["context_management"] = body["context_management"]
    request = claude_code_request()
    response = httpx.post(
        big_gateway.url + "/v1/messages/count_tokens?beta=true",
        json=count_body,
        headers={**request["headers"], "x-api-key": tenant.key, "Accept-Encoding": "identity"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    count = response.json()["input_tokens"]
    if provider == "anthropic":
        assert count == servers["anthropic"].count_tokens_value
        sent = servers["anthropic"].requests[-1]
        assert sent["path"] == "/v1/messages/count_tokens"
        assert sent["body"]["context_management"] == body["context_management"]
        assert sent["headers"]["anthropic-beta"] == request["headers"]["anthropic-beta"]
    else:
        assert count > 10_000  # the local estimate of a ~100 KB prompt
        assert not servers[provider].requests
    assert not UsageRecord.objects.filter(org=tenant.org).exists()


@pytest.mark.parametrize("stream", [True, False])
def test_a_model_without_reasoning_answers_claude_code_after_one_refusal(
    big_gateway, tenant, stream
):
    """gpt-4o refuses `reasoning_effort`: retried once without it, remembered per route."""
    upstream = NoReasoningOpenAI().start()
    try:
        model = f"gpt-4o-{uuid.uuid4().hex[:8]}"  # the gateway remembers per (upstream, model)
        apply(
            [{"name": "up", "provider": "openai-compatible", "base_url": upstream.base_url}],
            [
                {
                    "name": "claude-sonnet",
                    "routes": [{"upstream": "up", "model": model, "price": PRICE}],
                }
            ],
        )
        body = {**claude_code_request()["body"], "stream": stream}
        for round_ in (1, 2):
            response = _post_as_claude_code(big_gateway, tenant.key, body)
            assert response.status_code == 200, response.text
            if stream:
                assert _streamed_text(_events(response)).startswith("Hello from the mock upstream")
            else:
                assert response.json()["content"][0]["text"].startswith("Hello from the mock")
            efforts = [r["body"].get("reasoning_effort") for r in upstream.requests]
            assert efforts == (["high", None] if round_ == 1 else ["high", None, None])
        records = UsageRecord.objects.filter(org=tenant.org)
        assert records.count() == 2 and {r.status for r in records} == {"settled"}
    finally:
        upstream.stop()


def test_the_async_anthropic_sdk_streams_claude_codes_request_through_a_translated_route(
    big_gateway, servers, tenant
):
    _route("openai-compatible", servers)
    body = claude_code_request()["body"]

    async def run():
        client = anthropic.AsyncAnthropic(
            base_url=big_gateway.url, auth_token=tenant.key, api_key=None, max_retries=0
        )
        async with client.beta.messages.stream(
            model=body["model"],
            max_tokens=body["max_tokens"],
            system=body["system"],
            messages=body["messages"],
            tools=body["tools"],
            thinking=body["thinking"],
            output_config=body["output_config"],
            context_management=body["context_management"],
            betas=["claude-code-20250219", "context-management-2025-06-27"],
        ) as stream:
            text = "".join([piece async for piece in stream.text_stream])
            return text, stream.response.headers

    text, headers = asyncio.run(run())
    assert text == OPENAI_TEXT
    assert headers["x-tokenforge-dropped"] == ", ".join(DROPPED_ON_TRANSLATED)
    sent = servers["openai-compatible"].requests[-1]["body"]
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "system"]
