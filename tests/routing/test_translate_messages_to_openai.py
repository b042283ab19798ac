"""Anthropic Messages -> OpenAI chat for the fields Claude Code sends (issue 13): system
messages inside `messages` stay in place, `thinking` / `output_config.effort` become
`reasoning_effort`, server-side features are dropped and named by `messages_dropped`."""

from __future__ import annotations

import pytest

from routing.translate import openai_anthropic as tr


def _body(**extra) -> dict:
    return {
        "model": "m",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }


def test_system_messages_inside_messages_stay_where_the_client_put_them():
    request = tr.request_to_openai(
        {
            "max_tokens": 5,
            "system": "top",
            "messages": [
                {"role": "user", "content": "one"},
                {
                    "role": "system",
                    "content": [
                        {"type": "text", "text": "mid", "cache_control": {"type": "ephemeral"}}
                    ],
                },
                {"role": "assistant", "content": "two"},
                {"role": "system", "content": "late"},
                {"role": "user", "content": "three"},
            ],
        }
    )
    assert [(m["role"], m["content"]) for m in request["messages"]] == [
        ("system", "top"),
        ("user", "one"),
        ("system", "mid"),
        ("assistant", "two"),
        ("system", "late"),
        ("user", "three"),
    ]


@pytest.mark.parametrize(
    ("fields", "effort"),
    [
        (
            {
                "thinking": {"type": "adaptive", "display": "omitted"},
                "output_config": {"effort": "high"},
            },
            "high",
        ),
        ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "low"}}, "low"),
        ({"thinking": {"type": "adaptive"}}, "high"),  # Anthropic's default effort
        ({"output_config": {"effort": "xhigh"}}, "high"),
        ({"output_config": {"effort": "max"}}, "high"),
        ({"output_config": {"effort": "medium"}}, "medium"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2000}}, "low"),
        ({"thinking": {"type": "enabled", "budget_tokens": 8000}}, "medium"),
        ({"thinking": {"type": "enabled", "budget_tokens": 30000}}, "high"),
        ({"thinking": {"type": "disabled"}}, None),
        ({}, None),
    ],
)
def test_thinking_and_effort_become_one_reasoning_effort(fields, effort):
    request = tr.request_to_openai(_body(**fields))
    assert request.get("reasoning_effort") == effort
    assert "thinking" not in request and "output_config" not in request
    assert tr.messages_dropped(_body(**fields)) == []


def test_server_side_features_are_dropped_and_named_not_refused():
    body = _body(
        context_management={"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        service_tier="auto",
        output_config={"effort": "high", "task_budget": 5},
        tools=[
            {
                "name": "Read",
                "input_schema": {"type": "object"},
                "cache_control": {"type": "ephemeral"},
            },
            {"name": "Later", "input_schema": {"type": "object"}, "defer_loading": True},
            {"type": "web_search_20250305", "name": "web_search"},
        ],
        tool_choice={"type": "auto"},
    )
    request = tr.request_to_openai(body)
    assert [t["function"]["name"] for t in request["tools"]] == ["Read"]
    assert request["tool_choice"] == "auto" and request["reasoning_effort"] == "high"
    for name in ("context_management", "service_tier", "output_config"):
        assert name not in request
    assert tr.messages_dropped(body) == [
        "context_management",
        "service_tier",
        "output_config.task_budget",
        "tools.Later",
        "tools.web_search",
    ]


def test_a_tool_choice_whose_tools_were_all_dropped_is_left_out():
    body = _body(
        tools=[{"type": "web_search_20250305", "name": "web_search"}], tool_choice={"type": "any"}
    )
    request = tr.request_to_openai(body)
    assert "tools" not in request and "tool_choice" not in request


def test_server_tool_turns_in_the_history_are_left_out_and_named():
    body = _body(
        messages=[
            {"role": "user", "content": "search"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "server_tool_use",
                        "id": "srvtoolu_1",
                        "name": "web_search",
                        "input": {},
                    },
                    {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
                    {"type": "text", "text": "found it"},
                ],
            },
            {"role": "user", "content": "thanks"},
        ]
    )
    request = tr.request_to_openai(body)
    assert [m["content"] for m in request["messages"]] == ["search", "found it", "thanks"]
    assert tr.messages_dropped(body) == [
        "messages.content.server_tool_use",
        "messages.content.web_search_tool_result",
    ]


def test_tool_results_with_images_and_pdf_documents_are_translated():
    body = _body(
        messages=[
            {"role": "user", "content": "look"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [
                            {"type": "text", "text": "an image"},
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": "AAA",
                                },
                            },
                        ],
                    },
                    {
                        "type": "document",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": "JVBE",
                        },
                    },
                ],
            },
        ]
    )
    messages = tr.request_to_openai(body)["messages"]
    assert messages[2] == {"role": "tool", "tool_call_id": "t1", "content": "an image"}
    assert messages[3]["role"] == "user"
    assert messages[3]["content"][0] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,AAA"},
    }
    assert messages[3]["content"][1]["type"] == "file"
    assert messages[3]["content"][1]["file"]["file_data"] == "data:application/pdf;base64,JVBE"


def test_metadata_user_id_becomes_the_openai_user():
    request = tr.request_to_openai(_body(metadata={"user_id": "user_abc"}))
    assert request["user"] == "user_abc"
