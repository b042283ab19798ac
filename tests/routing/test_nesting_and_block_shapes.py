"""Issue 19 (low): deep JSON and malformed content blocks get 400, never a 500.

JSON nested deeper than PROXY_MAX_JSON_DEPTH (64) is refused at parse time, before any hold;
/v1/messages with an image whose `source` is a string or a tool_result whose `content` is a
number, and their chat-completions cousins, are refused by the shape checks. A fuzz matrix
runs every block type with every wrong field type through validation and the translators.
"""

from __future__ import annotations

import copy

import httpx
import pytest

from ledger.models import Hold, UsageRecord
from routing import request_bounds
from routing.errors import GatewayError
from routing.providers.base import UnsupportedFeature
from routing.translate import openai_anthropic, openai_gemini, tokens
from routing.validation import chat_validate
from routing.views_anthropic import messages_validate
from tests.routing.conftest import make_tenant, one_route

MSG = [{"role": "user", "content": "hi"}]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("depth", [70, 260, 1000, 5000])
def test_deep_json_is_refused_at_parse_time_before_any_hold(gateway, upstream, depth):
    one_route(upstream.base_url)
    t = make_tenant()
    deep = "[" * depth + '"x"' + "]" * depth  # built as text: json.dumps would recurse
    raw = (
        '{"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": '
        '[{"type": "text", "text": "hi", "extra": ' + deep + "}]}]}"
    )
    for path in ("/v1/chat/completions", "/v1/messages"):
        response = httpx.post(
            gateway.url + path,
            content=raw.encode(),
            headers={"authorization": f"Bearer {t.key}", "content-type": "application/json"},
            timeout=30,
        )
        assert response.status_code == 400, (path, depth, response.text)
        assert "nest" in response.text or "JSON" in response.text
    assert not Hold.objects.filter(org=t.org).exists()
    assert not UsageRecord.objects.filter(org=t.org).exists()
    assert upstream.requests == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/messages",
            {
                "max_tokens": 5,
                "messages": [
                    {"role": "user", "content": [{"type": "image", "source": "http://x/cat.png"}]}
                ],
            },
        ),
        (
            "/v1/messages",
            {
                "max_tokens": 5,
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "t1", "content": 42}],
                    }
                ],
            },
        ),
        (
            "/v1/messages",
            {
                "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "document", "source": 1}]}],
            },
        ),
        ("/v1/messages", {"max_tokens": 5, "messages": MSG, "tools": [1]}),
        ("/v1/chat/completions", {"messages": [{"role": "assistant", "tool_calls": 1}]}),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": 1}]}]},
        ),
        ("/v1/chat/completions", {"messages": MSG, "tools": [{"type": "function", "function": 1}]}),
        ("/v1/chat/completions", {"messages": MSG, "stop": 1}),
    ],
)
def test_malformed_blocks_get_400_not_500(gateway, upstream, path, body):
    one_route(upstream.base_url)
    t = make_tenant()
    response = httpx.post(
        gateway.url + path,
        json={"model": "gpt-4o-mini", **body},
        headers={"authorization": f"Bearer {t.key}"},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert not Hold.objects.filter(org=t.org).exists()


WRONG = [
    None,
    1,
    1.5,
    True,
    "s",
    [],
    {},
    [1],
    [None],
    {"a": 1},
    [{"type": 1}],
    [{"type": "text", "text": 1}],
    [{"type": "image", "source": "x"}],
]
ANTHROPIC_BLOCKS = [
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
]
ANTHROPIC_FIELDS = [
    "text",
    "source",
    "input",
    "content",
    "id",
    "name",
    "tool_use_id",
    "thinking",
    "data",
    "cache_control",
]
OPENAI_PARTS = ["text", "image_url", "input_audio", "file", "refusal"]
MESSAGE_FIELDS = ["tool_calls", "function_call", "name", "tool_call_id", "content"]
TOP_FIELDS = ["tools", "tool_choice", "response_format", "stop", "functions", "reasoning_effort"]


def _bodies():
    for kind in ANTHROPIC_BLOCKS:
        for name in ANTHROPIC_FIELDS:
            for wrong in WRONG:
                for role in ("user", "assistant"):
                    yield (
                        "anthropic",
                        {
                            "model": "m",
                            "max_tokens": 5,
                            "messages": [{"role": role, "content": [{"type": kind, name: wrong}]}],
                        },
                    )
    for kind in OPENAI_PARTS:
        for wrong in WRONG:
            for role in ("user", "assistant", "system", "tool"):
                yield (
                    "openai",
                    {
                        "model": "m",
                        "messages": [{"role": role, "content": [{"type": kind, kind: wrong}]}],
                    },
                )
    for name in MESSAGE_FIELDS:
        for wrong in [*WRONG, [{"function": 1}], [{"function": {"name": 1, "arguments": 1}}]]:
            for role in ("assistant", "tool", "user"):
                yield "openai", {"model": "m", "messages": [{"role": role, name: wrong}]}
    for name in TOP_FIELDS:
        for wrong in [
            *WRONG,
            [{"type": "function", "function": 1}],
            [{"type": "function", "function": {"name": "f", "parameters": 1}}],
        ]:
            yield "openai", {"model": "m", "messages": MSG, name: wrong}


def test_no_wrongly_shaped_body_crashes_validation_or_a_translator():
    """Every body is either refused by validation (400) or translated without a crash."""
    tried = crashes = 0
    failures = []
    for surface, body in _bodies():
        tried += 1
        try:
            if surface == "anthropic":
                messages_validate(copy.deepcopy(body))
                steps = (
                    openai_anthropic.request_to_openai,
                    tokens.estimate_tokens_anthropic,
                    request_bounds.prompt_tokens_upper,
                )
            else:
                chat_validate(copy.deepcopy(body))
                steps = (
                    openai_anthropic.request_to_anthropic,
                    openai_gemini.request_to_gemini,
                    tokens.estimate_tokens_openai,
                    request_bounds.prompt_tokens_upper,
                )
        except GatewayError:
            continue
        for step in steps:
            try:
                step(copy.deepcopy(body))
            except (GatewayError, UnsupportedFeature):
                pass
            except Exception as exc:  # noqa: BLE001 - what this test hunts
                crashes += 1
                failures.append((step.__name__, repr(exc), body))
    assert tried > 1500
    assert crashes == 0, failures[:5]
