"""Gemini behind `/v1/chat/completions`: the official `openai` SDK against the gateway, a real
Gemini-format mock upstream."""

from __future__ import annotations

import json
from decimal import Decimal

import openai
import pytest

from ledger.models import UsageRecord
from tests.mocks.gemini_upstream import MockGemini
from tests.routing.conftest import apply

pytestmark = pytest.mark.django_db(transaction=True)

PRICE = {"input": "1.25", "output": "10", "cached_input": "0.125"}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "additionalProperties": False,
            },
        },
    }
]


@pytest.fixture(scope="module")
def _gemini():
    server = MockGemini().start()
    yield server
    server.stop()


@pytest.fixture
def gemini(_gemini) -> MockGemini:
    _gemini.reset()
    apply(
        [{"name": "gem", "provider": "gemini", "base_url": _gemini.base_url}],
        [
            {
                "name": "gemini-pub",
                "routes": [{"upstream": "gem", "model": "gemini-2.5-pro", "price": PRICE}],
            }
        ],
    )
    return _gemini


def _cost(prompt: int, completion: int, cached: int = 0) -> Decimal:
    raw = (
        Decimal(prompt - cached) * Decimal("1.25")
        + Decimal(cached) * Decimal("0.125")
        + Decimal(completion) * 10
    )
    return raw / 1_000_000


def test_a_completion_from_gemini_with_an_inline_image_is_charged_with_cached_and_thinking_tokens(
    gateway, gemini, tenant
):
    gemini.cached_tokens = 10
    gemini.thoughts_tokens = 5
    raw = gateway.client(tenant.key).chat.completions.with_raw_response.create(
        model="gemini-pub",
        messages=[
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is it?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                ],
            },
        ],
        temperature=0.5,
    )
    completion = raw.parse()
    assert completion.model == "gemini-pub"
    assert completion.choices[0].message.content.startswith("Hello from the Gemini mock")
    assert completion.usage.prompt_tokens == 17 and completion.usage.completion_tokens == 13
    sent = gemini.requests[-1]
    assert sent["path"] == "/v1beta/models/gemini-2.5-pro:generateContent"
    assert sent["headers"]["x-goog-api-key"] == "sk-upstream-gem"
    assert sent["body"]["contents"][0]["parts"][1]["inlineData"]["mimeType"] == "image/png"
    # The output limit the hold paid for always goes upstream (issue 12).
    assert sent["body"]["generationConfig"] == {"temperature": 0.5, "maxOutputTokens": 4096}
    expected = _cost(17, 13, cached=10)
    assert Decimal(raw.headers["x-tokenforge-cost"]) == expected
    assert UsageRecord.objects.get(request_id=raw.headers["x-request-id"]).cost == expected


def test_a_streamed_gemini_tool_call_round_trips(gateway, gemini, tenant):
    client = gateway.client(tenant.key)
    with client.chat.completions.with_streaming_response.create(
        model="gemini-pub",
        messages=[{"role": "user", "content": "weather?"}],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "weather"}},
        stream=True,
    ) as response:
        request_id = response.headers["x-request-id"]
        chunks = list(response.parse())
    calls = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or ()]
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["tool_calls"] and json.loads(calls[0].function.arguments) == {"city": "Paris"}
    sent = gemini.requests[-1]
    assert sent["query"] == "alt=sse"
    assert sent["body"]["toolConfig"]["functionCallingConfig"] == {
        "mode": "ANY",
        "allowedFunctionNames": ["weather"],
    }
    assert "additionalProperties" not in json.dumps(sent["body"]["tools"])
    assert UsageRecord.objects.get(request_id=request_id).cost == _cost(17, 8)
    answer = client.chat.completions.create(
        model="gemini-pub",
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": calls[0].id,
                        "type": "function",
                        "function": {"name": "weather", "arguments": calls[0].function.arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny"},
        ],
    )
    assert answer.choices[0].message.content == "Tool said: sunny"


def test_an_image_link_for_gemini_is_refused_with_a_clear_400(gateway, gemini, tenant):
    with pytest.raises(openai.BadRequestError) as info:
        gateway.client(tenant.key).chat.completions.create(
            model="gemini-pub",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}
                    ],
                }
            ],
        )
    assert "base64 data URL" in info.value.message
    assert not gemini.requests


def test_gemini_overload_is_retried_then_reported_as_unavailable(gateway, gemini, tenant):
    gemini.mode = "503"
    with pytest.raises(openai.APIStatusError) as info:
        gateway.client(tenant.key).chat.completions.create(
            model="gemini-pub", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.status_code == 503
    assert len(gemini.requests) >= 2  # retried
