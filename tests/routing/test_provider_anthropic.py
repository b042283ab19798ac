"""The Anthropic adapter against a real HTTP mock speaking Anthropic's wire format (and the
mock checked by the official `anthropic` SDK pointed straight at it)."""

from __future__ import annotations

import asyncio
import json

import anthropic
import pytest

from routing.http import UpstreamClient
from routing.providers import get_provider
from routing.providers.base import StreamState, UpstreamError, UpstreamTarget, Usage
from tests.mocks.anthropic_upstream import MockAnthropic

TOOL = {
    "name": "weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture(scope="module")
def mock():
    server = MockAnthropic().start()
    yield server
    server.stop()


@pytest.fixture
def claude(mock) -> MockAnthropic:
    mock.reset()
    return mock


def _target(mock) -> UpstreamTarget:
    return UpstreamTarget(
        name="claude-up",
        provider="anthropic",
        base_url=mock.base_url,
        api_key="sk-ant-up",
        timeout=5,
    )


def _run(coro_factory):
    async def run():
        async with UpstreamClient() as client:
            return await coro_factory(client)

    return asyncio.run(run())


async def _drain(agen) -> list[dict]:
    return [event async for event in agen]


def test_the_mock_speaks_anthropic_for_the_official_sdk(claude):
    client = anthropic.Anthropic(base_url=claude.base_url, api_key="k", max_retries=0)
    message = client.messages.create(
        model="claude-x", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].text.startswith("Hello from the Anthropic mock")
    assert message.usage.input_tokens == 21 and message.stop_reason == "end_turn"
    with client.messages.stream(
        model="claude-x",
        max_tokens=50,
        tools=[TOOL],
        messages=[{"role": "user", "content": "weather?"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[1].input == {"city": "Paris"} and final.usage.output_tokens == 11
    assert (
        client.messages.count_tokens(
            model="claude-x", messages=[{"role": "user", "content": "hi"}]
        ).input_tokens
        == 42
    )
    claude.mode = "529"
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(model="c", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 529


def test_messages_pass_through_natively_with_key_version_and_forwarded_beta(claude):
    provider = get_provider("anthropic")
    claude.cache_read_input_tokens = 5
    body = {"model": "pub", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    result = _run(
        lambda c: provider.messages(
            client=c,
            target=_target(claude),
            model="claude-up-model",
            body=body,
            headers={"anthropic-beta": "tools-2024", "authorization": "Bearer client-secret"},
        )
    )
    assert result.usage == Usage(prompt_tokens=26, completion_tokens=11, cached_tokens=5)
    sent = claude.requests[-1]
    assert sent["path"] == "/v1/messages" and sent["body"]["model"] == "claude-up-model"
    assert sent["headers"]["x-api-key"] == "sk-ant-up"
    assert sent["headers"]["anthropic-version"] == "2023-06-01"
    assert sent["headers"]["anthropic-beta"] == "tools-2024"
    assert "authorization" not in sent["headers"]


def test_the_openai_surface_streams_text_and_tool_arguments_from_claude(claude):
    provider = get_provider("anthropic")
    body = {
        "model": "pub",
        "messages": [{"role": "user", "content": "weather?"}],
        "tools": [
            {
                "type": "function",
                "function": {"name": "weather", "parameters": TOOL["input_schema"]},
            }
        ],
    }
    state = StreamState()
    chunks = _run(
        lambda c: _drain(
            provider.chat_stream(
                client=c, target=_target(claude), model="m", body=body, headers={}, state=state
            )
        )
    )
    args = "".join(
        call["function"].get("arguments") or ""
        for ch in chunks
        if ch["choices"]
        for call in ch["choices"][0]["delta"].get("tool_calls") or ()
    )
    assert json.loads(args) == {"city": "Paris"}
    assert state.finish_reason == "tool_calls" and state.usage == Usage(21, 11, 0)
    assert claude.requests[-1]["body"]["max_tokens"] == 4096


def test_the_openai_surface_answers_a_completion_from_claude(claude):
    provider = get_provider("anthropic")
    body = {"model": "pub", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 30}
    result = _run(
        lambda c: provider.chat(client=c, target=_target(claude), model="m", body=body, headers={})
    )
    assert result.body["object"] == "chat.completion" and result.body["model"] == "pub"
    assert result.body["choices"][0]["message"]["content"].startswith("Hello from")
    assert result.body["usage"]["total_tokens"] == 32


@pytest.mark.parametrize(
    ("mode", "retryable", "disable"),
    [
        ("429", True, False),
        ("500", True, False),
        ("529", True, False),
        ("401", False, True),
        ("403", False, False),  # a permission_error about the request, not the key
        ("400", False, False),
    ],
)
def test_upstream_errors_map_to_retry_and_disable_flags(claude, mode, retryable, disable):
    claude.mode = mode
    provider = get_provider("anthropic")
    body = {"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(UpstreamError) as info:
        _run(
            lambda c: provider.messages(
                client=c, target=_target(claude), model="m", body=body, headers={}
            )
        )
    assert (info.value.status, info.value.retryable, info.value.disable) == (
        int(mode),
        retryable,
        disable,
    )
    assert info.value.message == f"mock {mode}"


@pytest.mark.parametrize("mode", ["cut", "stream_error"])
def test_a_broken_stream_raises_a_retryable_error(claude, mode):
    claude.mode = mode
    provider = get_provider("anthropic")
    body = {"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    state = StreamState()
    with pytest.raises(UpstreamError) as info:
        _run(
            lambda c: _drain(
                provider.messages_stream(
                    client=c, target=_target(claude), model="m", body=body, headers={}, state=state
                )
            )
        )
    assert info.value.retryable
    assert state.delivered_text  # some text had arrived before the break


def test_count_tokens_asks_the_upstream(claude):
    provider = get_provider("anthropic")
    body = {"model": "pub", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    count = _run(
        lambda c: provider.count_tokens(
            client=c, target=_target(claude), model="m", body=body, headers={}
        )
    )
    assert count == 42
    sent = claude.requests[-1]
    assert sent["path"] == "/v1/messages/count_tokens" and "max_tokens" not in sent["body"]
