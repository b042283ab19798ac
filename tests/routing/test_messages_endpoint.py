"""`POST /v1/messages` and `/v1/messages/count_tokens` end to end: the gateway under uvicorn,
real mock upstreams (Anthropic, Gemini, OpenAI) on 127.0.0.1, the official `anthropic` SDK as
the client; charged and recorded like chat completions, ledger invariants after each test."""

from __future__ import annotations

import json
from decimal import Decimal

import anthropic
import httpx
import pytest

from ledger.models import Account, AccountKind, UsageRecord
from tests.mocks.anthropic_upstream import MockAnthropic
from tests.mocks.gemini_upstream import MockGemini
from tests.routing.conftest import apply

pytestmark = pytest.mark.django_db(transaction=True)

TOOL = {
    "name": "weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
PRICE = {"input": "3", "output": "15", "cached_input": "0.3"}


@pytest.fixture(scope="module")
def _claude():
    server = MockAnthropic().start()
    yield server
    server.stop()


@pytest.fixture
def claude(_claude) -> MockAnthropic:
    _claude.reset()
    return _claude


@pytest.fixture(scope="module")
def _gemini():
    server = MockGemini().start()
    yield server
    server.stop()


@pytest.fixture
def gemini(_gemini) -> MockGemini:
    _gemini.reset()
    return _gemini


def _client(gateway, key: str, **kwargs) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0, **kwargs)


def _route(name: str, provider: str, base_url: str, upstream_model: str = "up-model") -> None:
    apply(
        [{"name": name, "provider": provider, "base_url": base_url}],
        [
            {
                "name": "claude-pub",
                "routes": [{"upstream": name, "model": upstream_model, "price": PRICE}],
            }
        ],
    )


def _cost(prompt: int, completion: int, cached: int = 0) -> Decimal:
    raw = Decimal(prompt - cached) * 3 + Decimal(cached) * Decimal("0.3") + Decimal(completion) * 15
    return raw / 1_000_000


def _credit(org) -> Decimal:
    return Account.objects.get(org=org, currency="CREDIT", kind=AccountKind.WALLET).posted


def test_a_message_through_an_anthropic_upstream_is_native_charged_and_recorded(
    gateway, claude, tenant
):
    _route("claude-up", "anthropic", claude.base_url)
    claude.cache_read_input_tokens = 100
    raw = _client(gateway, tenant.key).messages.with_raw_response.create(
        model="claude-pub",
        max_tokens=64,
        system="Be brief.",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"},
    )
    message = raw.parse()
    assert message.model == "claude-pub" and message.content[0].text.startswith("Hello")
    assert message.usage.input_tokens == 21 and message.usage.cache_read_input_tokens == 100
    sent = claude.requests[-1]
    assert sent["body"]["model"] == "up-model" and sent["body"]["system"] == "Be brief."
    assert sent["headers"]["x-api-key"] == "sk-upstream-claude-up"
    assert sent["headers"]["anthropic-beta"] == "prompt-caching-2024-07-31"
    # The client's own anthropic-version goes upstream unchanged.
    assert sent["headers"]["anthropic-version"] == raw.http_request.headers["anthropic-version"]
    expected = _cost(121, 11, cached=100)
    assert Decimal(raw.headers["x-tokenforge-cost"]) == expected
    assert raw.headers["x-tokenforge-route"] == "claude-up/up-model"
    record = UsageRecord.objects.get(request_id=raw.headers["x-request-id"])
    assert (record.prompt_tokens, record.completion_tokens, record.cost) == (121, 11, expected)
    assert record.status == "settled" and record.attempts[0]["status"] == "ok"
    assert _credit(tenant.org) == Decimal(100) - expected


def test_a_streamed_message_with_a_tool_call_round_trips_through_the_gateway(
    gateway, claude, tenant
):
    _route("claude-up", "anthropic", claude.base_url)
    client = _client(gateway, tenant.key)
    with client.messages.stream(
        model="claude-pub",
        max_tokens=64,
        tools=[TOOL],
        messages=[{"role": "user", "content": "weather in Paris?"}],
    ) as stream:
        final = stream.get_final_message()
        request_id = stream.response.headers["x-request-id"]
    assert final.model == "claude-pub" and final.stop_reason == "tool_use"
    call = final.content[1]
    assert call.type == "tool_use" and call.input == {"city": "Paris"}
    second = client.messages.create(
        model="claude-pub",
        max_tokens=64,
        tools=[TOOL],
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": [b.model_dump() for b in final.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}],
            },
        ],
    )
    assert second.content[0].text == "Tool said: sunny"
    record = UsageRecord.objects.get(request_id=request_id)
    assert record.stream and (record.prompt_tokens, record.completion_tokens) == (21, 11)
    assert record.cost == _cost(21, 11)


@pytest.mark.parametrize("stream", [False, True])
def test_messages_reach_an_openai_upstream_by_translation(gateway, upstream, tenant, stream):
    _route("relay-a", "openai-compatible", upstream.base_url)
    client = _client(gateway, tenant.key)
    kwargs = {
        "model": "claude-pub",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "hi"}],
    }
    if stream:
        with client.messages.stream(**kwargs) as s:
            message = s.get_final_message()
            request_id = s.response.headers["x-request-id"]
    else:
        raw = client.messages.with_raw_response.create(**kwargs)
        message, request_id = raw.parse(), raw.headers["x-request-id"]
    assert message.content[0].text.startswith("Hello from the mock upstream")
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 9)
    assert upstream.requests[-1]["body"]["messages"] == [{"role": "user", "content": "hi"}]
    record = UsageRecord.objects.get(request_id=request_id)
    assert record.cost == _cost(12, 9) and record.stream is stream


@pytest.mark.parametrize("stream", [False, True])
def test_messages_reach_gemini_with_tools_by_translation(gateway, gemini, tenant, stream):
    _route("gem", "gemini", gemini.base_url, upstream_model="gemini-2.5-flash")
    client = _client(gateway, tenant.key)
    kwargs = {
        "model": "claude-pub",
        "max_tokens": 50,
        "tools": [TOOL],
        "messages": [{"role": "user", "content": "weather?"}],
    }
    if stream:
        with client.messages.stream(**kwargs) as s:
            message = s.get_final_message()
    else:
        message = client.messages.create(**kwargs)
    assert message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.content[1].input == {"city": "Paris"}
    assert (message.usage.input_tokens, message.usage.output_tokens) == (17, 8)
    assert gemini.requests[-1]["path"].startswith("/v1beta/models/gemini-2.5-flash:")


def test_anthropic_shaped_errors_for_bad_requests_keys_and_refused_features(
    gateway, upstream, tenant
):
    _route("relay-a", "openai-compatible", upstream.base_url)
    client = _client(gateway, tenant.key)
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(
            model="claude-pub", max_tokens=0, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.body["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(
            model="claude-pub",
            max_tokens=10,
            extra_body={"top_k": 5},
            messages=[{"role": "user", "content": "x"}],
        )
    assert "top_k" in info.value.message
    with pytest.raises(anthropic.AuthenticationError) as info:
        _client(gateway, "tf-wrong").messages.create(
            model="claude-pub", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.body["type"] == "error"
    assert info.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(
            model="nope", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    broken = httpx.post(
        gateway.url + "/v1/messages",
        content=b"{not json",
        headers={"x-api-key": tenant.key, "content-type": "application/json"},
    )
    assert broken.status_code == 400
    assert broken.json()["type"] == "error"
    assert broken.json()["error"]["type"] == "invalid_request_error"
    assert not upstream.requests
    assert UsageRecord.objects.filter(cost__gt=0).count() == 0


def test_claude_code_style_bearer_auth_and_count_tokens_are_never_charged(
    gateway, claude, upstream, tenant
):
    _route("claude-up", "anthropic", claude.base_url)
    body = {"model": "claude-pub", "messages": [{"role": "user", "content": "hello there"}]}
    headers = {"authorization": f"Bearer {tenant.key}", "anthropic-version": "2023-06-01"}
    response = httpx.post(gateway.url + "/v1/messages/count_tokens", json=body, headers=headers)
    assert response.status_code == 200 and response.json() == {"input_tokens": 42}
    assert claude.requests[-1]["path"] == "/v1/messages/count_tokens"
    # a non-Anthropic route: the local estimate
    _route("relay-a", "openai-compatible", upstream.base_url)
    count = _client(gateway, tenant.key).messages.count_tokens(**body)
    assert 3 <= count.input_tokens <= 20
    assert not upstream.requests
    assert UsageRecord.objects.count() == 0 and _credit(tenant.org) == Decimal(100)


def test_models_answer_in_anthropic_shape_when_anthropic_version_is_sent(gateway, claude, tenant):
    _route("claude-up", "anthropic", claude.base_url)
    page = _client(gateway, tenant.key).models.list()
    assert [m.id for m in page.data] == ["claude-pub"] and page.data[0].type == "model"
    plain = httpx.get(gateway.url + "/v1/models", headers={"authorization": f"Bearer {tenant.key}"})
    assert plain.json()["object"] == "list"


def test_an_overloaded_claude_route_falls_back_to_an_openai_route_for_the_same_model(
    gateway, claude, upstream, tenant
):
    apply(
        [
            {"name": "claude-up", "provider": "anthropic", "base_url": claude.base_url},
            {"name": "relay-a", "base_url": upstream.base_url},
        ],
        [
            {
                "name": "claude-pub",
                "routes": [
                    {"upstream": "claude-up", "model": "up-model", "price": PRICE},
                    {"upstream": "relay-a", "model": "gpt-4o-mini", "price": PRICE},
                ],
            }
        ],
    )
    claude.mode = "529"
    raw = _client(gateway, tenant.key).messages.with_raw_response.create(
        model="claude-pub", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.parse().content[0].text.startswith("Hello from the mock upstream")
    assert raw.headers["x-tokenforge-fallback"] == "true"
    assert raw.headers["x-tokenforge-route"] == "relay-a/gpt-4o-mini"
    record = UsageRecord.objects.get(request_id=raw.headers["x-request-id"])
    assert record.attempts[0]["status"] == "529" and record.attempts[-1]["status"] == "ok"
    assert record.cost == _cost(12, 9)


def test_a_stream_broken_after_content_ends_with_an_anthropic_shaped_error_event(
    gateway, claude, tenant
):
    _route("claude-up", "anthropic", claude.base_url)
    claude.mode = "stream_error"  # overloaded mid-stream, after some text
    with httpx.stream(
        "POST",
        gateway.url + "/v1/messages",
        headers={"x-api-key": tenant.key, "anthropic-version": "2023-06-01"},
        json={
            "model": "claude-pub",
            "max_tokens": 20,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
    ) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data:")]
    events = [json.loads(line[5:]) for line in lines]
    assert events[0]["type"] == "message_start"
    assert events[-1]["type"] == "error" and events[-1]["error"]["type"]


def test_a_stream_refused_before_content_falls_back_to_the_next_route(
    gateway, claude, upstream, tenant
):
    apply(
        [
            {"name": "claude-up", "provider": "anthropic", "base_url": claude.base_url},
            {"name": "relay-a", "base_url": upstream.base_url},
        ],
        [
            {
                "name": "claude-pub",
                "routes": [
                    {"upstream": "claude-up", "model": "up-model", "price": PRICE},
                    {"upstream": "relay-a", "model": "gpt-4o-mini", "price": PRICE},
                ],
            }
        ],
    )
    claude.mode = "429"
    with _client(gateway, tenant.key).messages.stream(
        model="claude-pub", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        message = stream.get_final_message()
        headers = stream.response.headers
    assert message.content[0].text.startswith("Hello from the mock upstream")
    assert headers["x-tokenforge-fallback"] == "true"
    record = UsageRecord.objects.get(request_id=headers["x-request-id"])
    assert record.cost == _cost(12, 9) and record.upstream == "relay-a"


CLAUDE_CODE_REQUEST = {
    "model": "claude-pub",
    "max_tokens": 32000,
    "system": [
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}
    ],
    "tools": [
        {
            "name": "Read",
            "description": "Read a file",
            "input_schema": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {"file_path": {"type": "string"}},
                "required": ["file_path"],
                "additionalProperties": False,
            },
        }
    ],
    "metadata": {"user_id": "user_abc"},
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "read it", "cache_control": {"type": "ephemeral"}}
            ],
        }
    ],
}


@pytest.mark.parametrize("provider", ["anthropic", "openai-compatible", "gemini"])
def test_a_claude_code_shaped_beta_request_works_on_every_upstream_kind(
    gateway, claude, upstream, gemini, tenant, provider
):
    base = {"anthropic": claude, "openai-compatible": upstream, "gemini": gemini}[provider]
    _route("up", provider, base.base_url)
    client = _client(gateway, "ignored", default_headers={"authorization": f"Bearer {tenant.key}"})
    with client.beta.messages.stream(
        **CLAUDE_CODE_REQUEST, betas=["claude-code-20250219", "interleaved-thinking-2025-05-14"]
    ) as stream:
        message = stream.get_final_message()
    assert message.model == "claude-pub"
    if provider == "anthropic":
        sent = claude.requests[-1]
        assert sent["headers"]["anthropic-beta"] == (
            "claude-code-20250219,interleaved-thinking-2025-05-14"
        )
        assert sent["body"]["system"] == CLAUDE_CODE_REQUEST["system"]  # passed through untouched
    else:
        assert "anthropic-beta" not in base.requests[-1]["headers"]
    if provider != "openai-compatible":  # the OpenAI mock does not call tools
        assert message.stop_reason == "tool_use"
        assert message.content[-1].input == {"file_path": "Paris"}
    count = client.beta.messages.count_tokens(
        model="claude-pub", messages=CLAUDE_CODE_REQUEST["messages"], betas=["claude-code-20250219"]
    )
    assert count.input_tokens > 0
