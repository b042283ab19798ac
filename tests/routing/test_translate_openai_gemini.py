"""Unit tests of the OpenAI <-> Gemini translators (no network)."""

from __future__ import annotations

import asyncio
import json

import pytest

from routing.providers.base import StreamState, UnsupportedFeature, Usage
from routing.translate import openai_gemini as tr


def test_a_chat_request_becomes_contents_system_instruction_config_and_tools():
    body = {
        "model": "gemini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What's this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"q": "cat"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "a cat"},
        ],
        "temperature": 0.2,
        "top_p": 0.5,
        "max_tokens": 64,
        "stop": ["END"],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "lookup",
                    "parameters": {
                        "$schema": "http://json-schema.org/draft-07/schema#",
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"q": {"type": ["string", "null"]}},
                        "required": ["q"],
                    },
                },
            }
        ],
        "tool_choice": "required",
    }
    out = tr.request_to_gemini(body)
    assert out["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert out["contents"][0]["parts"][1] == {
        "inlineData": {"mimeType": "image/jpeg", "data": "QUJD"}
    }
    assert out["contents"][1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "lookup", "args": {"q": "cat"}}}],
    }
    assert out["contents"][2]["parts"][0]["functionResponse"] == {
        "name": "lookup",
        "response": {"content": "a cat"},
    }
    assert out["generationConfig"] == {
        "temperature": 0.2,
        "topP": 0.5,
        "maxOutputTokens": 64,
        "stopSequences": ["END"],
    }
    params = out["tools"][0]["functionDeclarations"][0]["parameters"]
    assert params == {
        "type": "object",
        "properties": {"q": {"type": "string", "nullable": True}},
        "required": ["q"],
    }
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


def test_an_image_link_is_refused_rather_than_fetched():
    body = {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}],
            }
        ]
    }
    with pytest.raises(UnsupportedFeature, match="base64 data URL"):
        tr.request_to_gemini(body)


@pytest.mark.parametrize(
    ("field", "value"), [("n", 3), ("logprobs", True), ("parallel_tool_calls", False)]
)
def test_features_without_a_gemini_equivalent_are_refused(field, value):
    with pytest.raises(UnsupportedFeature):
        tr.request_to_gemini({"messages": [{"role": "user", "content": "hi"}], field: value})


def test_a_gemini_response_with_a_function_call_and_cached_usage_becomes_a_completion():
    data = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "thinking", "thought": True},
                        {"functionCall": {"name": "lookup", "args": {"q": "x"}}},
                    ],
                },
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 40,
            "candidatesTokenCount": 5,
            "thoughtsTokenCount": 3,
            "cachedContentTokenCount": 30,
        },
    }
    out = tr.response_from_gemini(data, model="pub")
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    assert json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {"q": "x"}
    assert out["usage"]["prompt_tokens"] == 40 and out["usage"]["completion_tokens"] == 8
    assert out["usage"]["prompt_tokens_details"] == {"cached_tokens": 30}


@pytest.mark.parametrize(
    ("reason", "finish"), [("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter")]
)
def test_finish_reasons_are_mapped(reason, finish):
    data = {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]}
    assert tr.response_from_gemini(data, model="m")["choices"][0]["finish_reason"] == finish


def test_a_gemini_stream_becomes_openai_chunks_with_final_usage():
    async def responses():
        yield {"candidates": [{"content": {"parts": [{"text": "Hel"}]}}]}
        yield {
            "candidates": [{"content": {"parts": [{"text": "lo"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2},
        }

    async def run():
        state = StreamState()
        chunks = [c async for c in tr.stream_from_gemini(responses(), model="m", state=state)]
        return state, chunks

    state, chunks = asyncio.run(run())
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["total_tokens"] == 6
    assert state.usage == Usage(4, 2, 0) and state.finish_reason == "stop"


def test_a_thought_signature_survives_the_round_trip_inside_the_tool_call_id():
    signature = "+/+/AQ=="  # base64 of fb ff bf 01: "+", "/" and padding
    data = {
        "candidates": [
            {
                "content": {
                    "parts": [
                        {
                            "functionCall": {"name": "lookup", "args": {}},
                            "thoughtSignature": signature,
                        }
                    ]
                },
                "finishReason": "STOP",
            }
        ]
    }
    call = tr.response_from_gemini(data, model="m")["choices"][0]["message"]["tool_calls"][0]
    assert all(ch.isalnum() or ch in "_-" for ch in call["id"])  # a valid Anthropic tool id too
    body = {
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": '{"a": 1}'},
        ]
    }
    contents = tr.request_to_gemini(body)["contents"]
    assert contents[1]["parts"][0]["thoughtSignature"] == signature
    assert contents[2]["parts"][0]["functionResponse"] == {"name": "lookup", "response": {"a": 1}}
