"""Responses <-> the canonical chat shape, without a server: what Codex 0.169 sends is taken
as it is, namespaces and roles map both ways, hosted tools are dropped and named, reasoning
effort reaches Anthropic and Gemini, and chat chunks become typed events in order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routing.errors import GatewayError
from routing.translate import openai_anthropic, openai_gemini
from routing.translate import responses as tr

FIXTURE = Path("/work/shared/fixtures/codex-0.169.0-responses.json")
ROOT_FIXTURE = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / FIXTURE.name


def _codex_body() -> dict:
    for path in (ROOT_FIXTURE, FIXTURE):
        if path.exists():
            return json.loads(path.read_text())["body"]
    pytest.skip("the captured Codex request (shared/fixtures) is not beside this checkout")


def _chat(body: dict) -> tuple[dict, list[str]]:
    tr.request_validate(body)
    items = tr.input_items(body["input"])
    return tr.request_to_chat(
        body, items=items, native=tr.native_request(body, history=[], items=items)
    )


def test_what_codex_sends_translates_for_every_upstream():
    body = _codex_body()
    chat, dropped = _chat(body)
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert [m["role"] for m in chat["messages"]] == ["system", "system", "user", "user"]
    assert chat["messages"][-1]["content"] == [{"type": "text", "text": "Say hello"}]
    names = [t["function"]["name"] for t in chat["tools"]]
    assert "exec_command" in names and "multi_agent_v1__spawn_agent" in names
    assert dropped == ["web_search", "include"]
    assert chat["prompt_cache_key"] == body["prompt_cache_key"]
    assert chat[tr.NATIVE_KEY]["tools"] == body["tools"]  # a native upstream gets them all
    anthropic = openai_anthropic.request_to_anthropic(chat)
    assert anthropic["system"] and anthropic["messages"][0]["role"] == "user"
    gemini = openai_gemini.request_to_gemini(chat)
    assert gemini["contents"][-1]["role"] == "user"


def test_items_become_chat_messages_with_tool_calls_and_results():
    items = tr.input_items(
        [
            {"role": "developer", "content": "Rules."},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Weather?"},
                    {"type": "input_image", "image_url": "https://x/i.png"},
                ],
            },
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Checking."}],
            },
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "spawn_agent",
                "namespace": "multi_agent_v1",
                "arguments": "{}",
            },
            {
                "type": "function_call",
                "call_id": "c2",
                "name": "weather",
                "arguments": '{"city":"Paris"}',
            },
            {"type": "function_call_output", "call_id": "c1", "output": "spawned"},
            {
                "type": "function_call_output",
                "call_id": "c2",
                "output": [{"type": "input_text", "text": "sunny"}],
            },
        ]
    )
    messages, dropped = tr.messages_from_items(items, instructions="Be brief.")
    assert [m["role"] for m in messages] == [
        "system",
        "system",
        "user",
        "assistant",
        "tool",
        "tool",
    ]
    assert messages[2]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "https://x/i.png"},
    }
    assistant = messages[3]
    assert assistant["content"] == "Checking."
    assert [c["function"]["name"] for c in assistant["tool_calls"]] == [
        "multi_agent_v1__spawn_agent",
        "weather",
    ]
    assert messages[5] == {"role": "tool", "tool_call_id": "c2", "content": "sunny"}
    assert dropped == {"input.reasoning"}


def test_a_namespaced_call_comes_back_with_its_namespace():
    body = {
        "model": "m",
        "input": "x",
        "tools": [
            {"type": "namespace", "name": "crm", "tools": [{"type": "function", "name": "find"}]}
        ],
    }
    chat = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "crm__find", "arguments": "{}"},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ]
    }
    response = tr.response_from_chat(
        chat, body=body, response_id="resp_1", created_at=1, model="m", usage={}
    )
    call = response["output"][0]
    assert call["type"] == "function_call" and call["name"] == "find"
    assert call["namespace"] == "crm" and call["call_id"] == "call_1"


def test_reasoning_effort_reaches_anthropic_and_gemini_settings():
    chat, _ = _chat(
        {"model": "m", "input": "x", "reasoning": {"effort": "high", "summary": "auto"}}
    )
    assert chat["reasoning_effort"] == "high"
    assert openai_anthropic.request_to_anthropic(chat)["output_config"] == {"effort": "high"}
    assert "thinkingConfig" in openai_gemini.request_to_gemini(chat)["generationConfig"]
    chat, _ = _chat({"model": "m", "input": "x", "reasoning": {"effort": "none"}})
    assert "reasoning_effort" not in chat


def test_tool_choice_maps_and_hosted_choices_are_named():
    chat, dropped = _chat(
        {
            "model": "m",
            "input": "x",
            "tools": [{"type": "function", "name": "f"}],
            "tool_choice": {"type": "function", "name": "f"},
        }
    )
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    chat, dropped = _chat(
        {
            "model": "m",
            "input": "x",
            "tools": [{"type": "function", "name": "f"}],
            "tool_choice": {"type": "web_search"},
        }
    )
    assert chat["tool_choice"] == "auto" and "tool_choice.web_search" in dropped


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "input": [{"type": "nope"}]},
        {"model": "m", "input": [{"type": "message", "role": "user", "content": 5}]},
        {"model": "m", "input": [{"type": "function_call", "name": "f"}]},
        {"model": "m", "input": "x", "tools": [{"type": "namespace", "name": "n", "tools": 1}]},
        {"model": "m", "input": "x", "reasoning": {"effort": "maximum"}},
        {"model": "m", "input": "x", "text": {"format": {"type": "xml"}}},
        {"model": "m", "input": "x", "include": "everything"},
    ],
)
def test_malformed_requests_are_refused(body):
    with pytest.raises(GatewayError) as err:
        tr.request_validate(body)
    assert err.value.status == 400


def _events(chunks: list[dict], **options) -> list[dict]:
    stream = tr.ResponseEventStream(
        body={"model": "m", "input": "x", **options}, response_id="resp_1", created_at=1, model="m"
    )
    events = stream.start()
    for chunk in chunks:
        events += stream.feed(chunk)
    return events + stream.finish()


def _delta(**delta) -> dict:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


def test_text_then_a_call_streams_in_openais_order():
    events = _events(
        [
            _delta(role="assistant", content=""),
            _delta(content="Hel"),
            _delta(content="lo"),
            _delta(
                tool_calls=[
                    {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": ""}}
                ]
            ),
            _delta(tool_calls=[{"index": 0, "function": {"arguments": '{"a":'}}]),
            _delta(tool_calls=[{"index": 0, "function": {"arguments": "1}"}}]),
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
            {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7}},
        ]
    )
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = events[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["message", "function_call"]
    assert final["output"][1]["arguments"] == '{"a":1}'
    assert final["usage"]["input_tokens"] == 5 and final["usage"]["total_tokens"] == 12


def test_a_length_finish_ends_in_response_incomplete():
    events = _events(
        [_delta(content="Hi"), {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}]
    )
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_a_broken_stream_ends_in_response_failed():
    events = _events([_delta(content="Hi"), {"error": {"message": "The upstream stream broke"}}])
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["message"] == "The upstream stream broke"
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "Hi"


def test_reasoning_from_a_relay_streams_as_a_reasoning_item_before_the_message():
    events = _events(
        [
            _delta(reasoning_content="Thinking"),
            _delta(reasoning_content=" hard"),
            _delta(content="Answer"),
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {
                "choices": [],
                "usage": {
                    "prompt_tokens": 3,
                    "completion_tokens": 9,
                    "completion_tokens_details": {"reasoning_tokens": 6},
                },
            },
        ]
    )
    kinds = [e["type"] for e in events]
    assert kinds[2:5] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
    ]
    assert kinds.index("response.reasoning_summary_text.done") < kinds.index(
        "response.content_part.added"
    )
    final = events[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["reasoning", "message"]
    assert final["output"][0]["summary"] == [{"type": "summary_text", "text": "Thinking hard"}]
    assert final["usage"]["output_tokens_details"] == {"reasoning_tokens": 6}
