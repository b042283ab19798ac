"""The Gemini adapter against a real HTTP mock speaking Gemini's wire format."""

from __future__ import annotations

import asyncio
import json

import pytest

from routing.http import UpstreamClient
from routing.providers import get_provider
from routing.providers.base import StreamState, UpstreamError, UpstreamTarget, Usage
from tests.mocks.gemini_upstream import MockGemini

FN = {
    "type": "function",
    "function": {
        "name": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def mock():
    server = MockGemini().start()
    yield server
    server.stop()


@pytest.fixture
def gemini(mock) -> MockGemini:
    mock.reset()
    return mock


def _target(mock) -> UpstreamTarget:
    return UpstreamTarget(
        name="gem", provider="gemini", base_url=mock.base_url, api_key="AIza-up", timeout=5
    )


def _run(factory):
    async def run():
        async with UpstreamClient() as client:
            return await factory(client)

    return asyncio.run(run())


async def _drain(agen) -> list[dict]:
    return [event async for event in agen]


def test_chat_calls_generate_content_with_the_key_header_and_reads_usage(gemini):
    gemini.cached_tokens = 7
    provider = get_provider("gemini")
    body = {"model": "pub", "messages": [{"role": "user", "content": "hi"}]}
    result = _run(
        lambda c: provider.chat(
            client=c, target=_target(gemini), model="gemini-2.5-flash", body=body, headers={}
        )
    )
    assert result.body["choices"][0]["message"]["content"].startswith("Hello from the Gemini mock")
    assert result.usage == Usage(prompt_tokens=17, completion_tokens=8, cached_tokens=7)
    sent = gemini.requests[-1]
    assert sent["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent["headers"]["x-goog-api-key"] == "AIza-up"


def test_chat_stream_uses_sse_and_round_trips_a_tool_call(gemini):
    provider = get_provider("gemini")
    body = {"model": "pub", "messages": [{"role": "user", "content": "weather?"}], "tools": [FN]}
    state = StreamState()
    chunks = _run(
        lambda c: _drain(
            provider.chat_stream(
                client=c, target=_target(gemini), model="g", body=body, headers={}, state=state
            )
        )
    )
    sent = gemini.requests[-1]
    assert sent["path"] == "/v1beta/models/g:streamGenerateContent" and sent["query"] == "alt=sse"
    calls = [
        call
        for ch in chunks
        if ch["choices"]
        for call in ch["choices"][0]["delta"].get("tool_calls") or ()
    ]
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Paris"}
    assert state.finish_reason == "tool_calls" and state.usage == Usage(17, 8, 0)
    # the tool's answer goes back as a functionResponse
    follow = {
        "model": "pub",
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None, "tool_calls": [{**calls[0], "index": None}]},
            {"role": "tool", "tool_call_id": calls[0]["id"], "content": "sunny"},
        ],
        "tools": [FN],
    }
    result = _run(
        lambda c: provider.chat(
            client=c, target=_target(gemini), model="g", body=follow, headers={}
        )
    )
    assert result.body["choices"][0]["message"]["content"] == "Tool said: sunny"


def test_the_anthropic_surface_reaches_gemini_through_translation(gemini):
    provider = get_provider("gemini")
    body = {
        "model": "pub",
        "max_tokens": 30,
        "system": "brief",
        "messages": [{"role": "user", "content": "hi"}],
    }
    result = _run(
        lambda c: provider.messages(
            client=c, target=_target(gemini), model="g", body=body, headers={}
        )
    )
    assert result.body["type"] == "message" and result.body["stop_reason"] == "end_turn"
    assert result.body["usage"] == {
        "input_tokens": 17,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 8,
    }
    sent = gemini.requests[-1]["body"]
    assert sent["systemInstruction"] == {"parts": [{"text": "brief"}]}
    assert sent["generationConfig"]["maxOutputTokens"] == 30


@pytest.mark.parametrize(
    ("mode", "retryable", "disable"),
    [
        ("429", True, False),
        ("500", True, False),
        ("503", True, False),
        ("403", False, False),  # PERMISSION_DENIED about the request: not the key
        ("badkey", False, True),
        ("400", False, False),
    ],
)
def test_errors_map_to_retry_and_disable_flags(gemini, mode, retryable, disable):
    gemini.mode = mode
    provider = get_provider("gemini")
    body = {"messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(UpstreamError) as info:
        _run(
            lambda c: provider.chat(
                client=c, target=_target(gemini), model="g", body=body, headers={}
            )
        )
    assert (info.value.retryable, info.value.disable) == (retryable, disable)


def test_a_cut_stream_raises_a_retryable_error(gemini):
    gemini.mode = "cut"
    provider = get_provider("gemini")
    body = {"messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(UpstreamError) as info:
        _run(
            lambda c: _drain(
                provider.chat_stream(
                    client=c,
                    target=_target(gemini),
                    model="g",
                    body=body,
                    headers={},
                    state=StreamState(),
                )
            )
        )
    assert info.value.retryable
