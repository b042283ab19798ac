"""Claude behind `/v1/chat/completions`: the official `openai` SDK against the gateway, a real
Anthropic-format mock upstream; usage, cost, tool calls, streaming and refusals."""

from __future__ import annotations

import json
from decimal import Decimal

import openai
import pytest

from ledger.models import UsageRecord
from tests.mocks.anthropic_upstream import MockAnthropic
from tests.routing.conftest import apply

pytestmark = pytest.mark.django_db(transaction=True)

PRICE = {"input": "3", "output": "15", "cached_input": "0.3"}
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


@pytest.fixture(scope="module")
def _claude():
    server = MockAnthropic().start()
    yield server
    server.stop()


@pytest.fixture
def claude(_claude) -> MockAnthropic:
    _claude.reset()
    apply(
        [{"name": "claude-up", "provider": "anthropic", "base_url": _claude.base_url}],
        [
            {
                "name": "claude-pub",
                "routes": [{"upstream": "claude-up", "model": "claude-up-1", "price": PRICE}],
            }
        ],
    )
    return _claude


def _cost(prompt: int, completion: int, cached: int = 0, written: int = 0) -> Decimal:
    """Cache writes at Anthropic's 5-minute rule, 1.25 × input (the route sets no price)."""
    raw = (
        Decimal(prompt - cached - written) * 3
        + Decimal(cached) * Decimal("0.3")
        + Decimal(written) * Decimal("3.75")
        + Decimal(completion) * 15
    )
    return raw / 1_000_000


def test_a_chat_completion_from_claude_reports_cached_usage_and_is_charged_exactly(
    gateway, claude, tenant
):
    claude.cache_read_input_tokens = 40
    claude.cache_creation_input_tokens = 10
    raw = gateway.client(tenant.key).chat.completions.with_raw_response.create(
        model="claude-pub",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        max_tokens=30,
        stop=["zzz"],
    )
    completion = raw.parse()
    assert completion.model == "claude-pub"
    assert completion.choices[0].message.content.startswith("Hello from the Anthropic mock")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == 71 and completion.usage.completion_tokens == 11
    assert completion.usage.prompt_tokens_details.cached_tokens == 40
    sent = claude.requests[-1]["body"]
    assert sent["system"] == "Be brief." and sent["max_tokens"] == 30
    assert sent["stop_sequences"] == ["zzz"] and sent["model"] == "claude-up-1"
    expected = _cost(71, 11, cached=40, written=10)
    assert Decimal(raw.headers["x-tokenforge-cost"]) == expected
    record = UsageRecord.objects.get(request_id=raw.headers["x-request-id"])
    assert record.cost == expected and record.cached_tokens == 40


def test_streamed_tool_call_arguments_round_trip_through_the_openai_sdk(gateway, claude, tenant):
    client = gateway.client(tenant.key)
    stream = client.chat.completions.create(
        model="claude-pub",
        messages=[{"role": "user", "content": "weather?"}],
        tools=TOOLS,
        stream=True,
        stream_options={"include_usage": True},
    )
    calls: dict[int, dict] = {}
    usage, finish = None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or ():
                entry = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                entry["id"] = call.id or entry["id"]
                entry["name"] += (call.function and call.function.name) or ""
                entry["arguments"] += (call.function and call.function.arguments) or ""
    assert finish == "tool_calls" and usage.prompt_tokens == 21 and usage.completion_tokens == 11
    call = calls[0]
    assert call["name"] == "weather" and json.loads(call["arguments"]) == {"city": "Paris"}
    answer = client.chat.completions.create(
        model="claude-pub",
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["name"], "arguments": call["arguments"]},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
        ],
    )
    assert answer.choices[0].message.content == "Tool said: sunny"
    sent = claude.requests[-1]["body"]["messages"]
    assert sent[1]["content"][0]["type"] == "tool_use"
    assert sent[2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": call["id"],
        "content": "sunny",
    }


def test_a_plain_stream_from_claude_hides_usage_unless_asked_and_is_charged(
    gateway, claude, tenant
):
    with gateway.client(tenant.key).chat.completions.with_streaming_response.create(
        model="claude-pub", messages=[{"role": "user", "content": "hi"}], stream=True
    ) as response:
        request_id = response.headers["x-request-id"]
        chunks = list(response.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Hello from the Anthropic mock")
    assert all(c.usage is None for c in chunks)
    record = UsageRecord.objects.get(request_id=request_id)
    assert (record.prompt_tokens, record.completion_tokens) == (21, 11)
    assert record.cost == _cost(21, 11)


def test_features_claude_cannot_honour_are_refused_with_400_and_nothing_is_charged(
    gateway, claude, tenant
):
    client = gateway.client(tenant.key)
    for extra in ({"n": 2}, {"logprobs": True}, {"response_format": {"type": "json_object"}}):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(
                model="claude-pub", messages=[{"role": "user", "content": "hi"}], **extra
            )
        assert info.value.body["param"] == next(iter(extra))
    assert not claude.requests
    assert UsageRecord.objects.filter(cost__gt=0).count() == 0
