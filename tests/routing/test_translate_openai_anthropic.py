"""Unit tests of the OpenAI <-> Anthropic translators (no network)."""

from __future__ import annotations

import asyncio
import json

import pytest

from routing.providers.base import StreamState, UnsupportedFeature, Usage
from routing.translate import openai_anthropic as tr
from routing.translate.tokens import estimate_tokens_anthropic, estimate_tokens_openai

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def _collect(agen) -> list[dict]:
    async def run():
        return [event async for event in agen]

    return asyncio.run(run())


async def _aiter(items):
    for item in items:
        yield item


def test_system_turns_tools_and_limits_are_translated_to_anthropic():
    body = {
        "model": "claude",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        "tools": TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "parallel_tool_calls": False,
        "stop": "END",
        "temperature": 0.3,
        "top_p": 0.9,
    }
    out = tr.request_to_anthropic(body)
    assert out["system"] == "Be brief."
    assert out["max_tokens"] == tr.DEFAULT_MAX_TOKENS
    assert out["stop_sequences"] == ["END"]
    assert (out["temperature"], out["top_p"]) == (0.3, 0.9)
    assert out["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}}
        ],
    }
    assert out["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"}
    ]
    assert out["tools"][0]["input_schema"]["properties"]["city"] == {"type": "string"}
    assert out["tool_choice"] == {
        "type": "tool",
        "name": "weather",
        "disable_parallel_tool_use": True,
    }


def test_images_become_base64_or_url_sources():
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
                ],
            }
        ],
        "max_tokens": 50,
    }
    blocks = tr.request_to_anthropic(body)["messages"][0]["content"]
    assert blocks[1]["source"] == {"type": "base64", "media_type": "image/png", "data": "AAAA"}
    assert blocks[2]["source"] == {"type": "url", "url": "https://example.com/a.jpg"}
    back = tr.request_to_openai({"messages": [{"role": "user", "content": blocks}]})
    assert back["messages"][0]["content"][1]["image_url"]["url"] == "data:image/png;base64,AAAA"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n", 2),
        ("logprobs", True),
        ("audio", {"voice": "alloy"}),
        ("modalities", ["text", "audio"]),
        ("logit_bias", {"1": 2}),
        ("presence_penalty", 0.5),
        ("response_format", {"type": "json_object"}),
        ("temperature", 1.5),
    ],
)
def test_openai_features_without_an_anthropic_equivalent_are_refused(field, value):
    body = {"messages": [{"role": "user", "content": "hi"}], field: value}
    with pytest.raises(UnsupportedFeature) as info:
        tr.request_to_anthropic(body)
    assert info.value.param == field


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("top_k", 5),
        ("mcp_servers", [{"type": "url", "url": "https://mcp.example", "name": "x"}]),
        ("container", "container_1"),
    ],
)
def test_anthropic_features_that_change_the_answer_are_refused_on_translated_routes(field, value):
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, field: value}
    with pytest.raises(UnsupportedFeature) as info:
        tr.request_to_openai(body)
    assert info.value.param == field


def test_an_anthropic_reply_with_a_tool_call_becomes_an_openai_completion_with_usage():
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
        ],
        "stop_reason": "tool_use",
        "usage": {
            "input_tokens": 10,
            "cache_read_input_tokens": 5,
            "cache_creation_input_tokens": 3,
            "output_tokens": 7,
        },
    }
    out = tr.response_to_openai(message, model="claude-public")
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Checking."
    call = choice["message"]["tool_calls"][0]
    assert call["id"] == "toolu_1" and json.loads(call["function"]["arguments"]) == {
        "city": "Paris"
    }
    assert out["usage"] == {
        "prompt_tokens": 18,
        "completion_tokens": 7,
        "total_tokens": 25,
        "prompt_tokens_details": {"cached_tokens": 5, "cache_write_tokens": 3},
    }
    assert tr.usage_from_anthropic(message["usage"]) == Usage(18, 7, 5, cache_write_tokens=3)


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reasons_map_to_finish_reasons(stop, finish):
    message = {"content": [{"type": "text", "text": "x"}], "stop_reason": stop, "usage": {}}
    assert tr.response_to_openai(message, model="m")["choices"][0]["finish_reason"] == finish


def test_an_openai_completion_becomes_an_anthropic_message_and_back_to_openai_request():
    completion = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_9",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city":"Rome"}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 30,
            "completion_tokens": 4,
            "prompt_tokens_details": {"cached_tokens": 10},
        },
    }
    message = tr.response_to_anthropic(completion, model="m")
    assert message["stop_reason"] == "tool_use"
    assert message["content"] == [
        {"type": "tool_use", "id": "call_9", "name": "weather", "input": {"city": "Rome"}}
    ]
    assert message["usage"] == {
        "input_tokens": 20,
        "output_tokens": 4,
        "cache_read_input_tokens": 10,
        "cache_creation_input_tokens": 0,
    }
    # the next turn, Anthropic-style, back to OpenAI
    request = tr.request_to_openai(
        {
            "system": [{"type": "text", "text": "sys"}],
            "max_tokens": 9,
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": message["content"]},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "call_9", "content": "rain"}
                    ],
                },
            ],
            "tool_choice": {"type": "any"},
            "stop_sequences": ["X"],
        }
    )
    assert request["messages"][0] == {"role": "system", "content": "sys"}
    assert request["messages"][2]["tool_calls"][0]["function"]["name"] == "weather"
    assert request["messages"][3] == {"role": "tool", "tool_call_id": "call_9", "content": "rain"}
    assert request["tool_choice"] == "required" and request["stop"] == ["X"]
    assert request["max_tokens"] == 9


def test_an_anthropic_stream_with_streamed_tool_arguments_becomes_openai_chunks():
    events = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 9, "output_tokens": 1}}},
        {"type": "ping"},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"city": '},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 6},
        },
        {"type": "message_stop"},
    ]
    state = StreamState()
    chunks = _collect(tr.stream_to_openai(_aiter(events), model="pub", state=state))
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    args = "".join(
        call["function"].get("arguments") or ""
        for c in chunks
        if c["choices"]
        for call in c["choices"][0]["delta"].get("tool_calls") or ()
    )
    assert text == "Hi" and json.loads(args) == {"city": "Paris"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["prompt_tokens"] == 9
    assert chunks[-1]["usage"]["completion_tokens"] == 6
    assert state.finish_reason == "tool_calls" and state.usage == Usage(9, 6, 0)


def test_openai_chunks_become_a_well_formed_anthropic_event_stream():
    def chunk(delta, finish=None):
        return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Let me "}),
        chunk({"content": "check."}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
        chunk({}, "tool_calls"),
        {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 9}},
    ]
    state = StreamState()
    events = _collect(tr.stream_to_anthropic(_aiter(chunks), model="pub", state=state))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds.count("content_block_start") == 2 == kinds.count("content_block_stop")
    tool_start = [e for e in events if e["type"] == "content_block_start"][1]
    assert tool_start["index"] == 1 and tool_start["content_block"]["name"] == "weather"
    partial = "".join(
        e["delta"].get("partial_json", "") for e in events if e["type"] == "content_block_delta"
    )
    assert json.loads(partial) == {"city": "Oslo"}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    assert events[-2]["usage"] == {
        "input_tokens": 12,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 9,
    }
    assert state.usage == Usage(12, 9, 0)


def test_local_token_estimates_count_text_messages_images_and_tools():
    short = estimate_tokens_openai({"messages": [{"role": "user", "content": "hi"}]})
    long = estimate_tokens_openai({"messages": [{"role": "user", "content": "word " * 400}]})
    assert 1 <= short < 15 and 390 <= long <= 520
    image = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "x", "data": "A"}}
                ],
            }
        ]
    }
    assert estimate_tokens_anthropic(image) >= 1600
    with_tools = {"messages": [{"role": "user", "content": "hi"}], "tools": TOOLS}
    assert estimate_tokens_openai(with_tools) > short


def test_an_extended_thinking_budget_becomes_the_nearest_reasoning_effort():
    def effort(budget):
        body = {
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 32000,
            "thinking": {"type": "enabled", "budget_tokens": budget},
        }
        return tr.request_to_openai(body)["reasoning_effort"]

    assert (effort(1024), effort(8000), effort(20000)) == ("low", "medium", "high")
    plain = tr.request_to_openai({"messages": [{"role": "user", "content": "hi"}]})
    assert "reasoning_effort" not in plain
