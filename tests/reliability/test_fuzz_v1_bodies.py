"""Property-based fuzzing (Hypothesis) of every /v1/ endpoint's body, against the gateway
under uvicorn: wrong types, huge and deeply nested JSON, invalid UTF-8, negative or absurd
max_tokens, unknown fields, empty messages. Always a 4xx in the endpoint's own error shape,
never a 500, never a charge.

The only route points at a mock upstream that rejects everything with 400 (as OpenAI does
an unknown argument), so a body the gateway lets through still ends in a 4xx: any 2xx or
5xx on a chat/embeddings/messages call would be the gateway's own doing.
"""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ledger.models import Account, AccountKind, UsageRecord
from tests.routing.conftest import one_route

pytestmark = pytest.mark.django_db(transaction=True)

FUZZ = settings(
    max_examples=120,
    deadline=None,
    database=None,  # no example files written into the tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
LIMIT = 65536  # PROXY_MAX_BODY_BYTES of the test gateway

scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too: orjson refuses those
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
models = (
    st.just("gpt-4o-mini")
    | st.just("")
    | st.text(max_size=10).map(lambda t: "gpt\x00" + t)  # PostgreSQL cannot store NUL
    | json_values
)
max_tokens = (
    st.integers(max_value=0) | st.integers(min_value=1_000_001) | st.integers() | json_values
)
roles = st.sampled_from(["user", "assistant", "system", "tool", "", "x"]) | json_values
message = st.fixed_dictionaries({}, optional={"role": roles, "content": json_values | st.text()})
messages = st.just([]) | st.lists(message | json_values, max_size=3) | json_values
unknown = st.dictionaries(
    st.text(min_size=1, max_size=12).filter(lambda k: k not in {"model", "messages", "input"}),
    json_values,
    max_size=3,
)


def _body(fields: dict, valid: dict) -> st.SearchStrategy:
    """Anything built from the fields, or a valid body with one field broken (or dropped),
    both with unknown fields mixed in."""
    anything = st.builds(
        lambda known, extra: {**extra, **known}, st.fixed_dictionaries({}, optional=fields), unknown
    )

    def broken(name: str) -> st.SearchStrategy:
        return st.builds(
            lambda value, extra: {**extra, **valid, **({} if value is _DROP else {name: value})},
            fields[name] | st.just(_DROP),
            unknown,
        )

    near_valid = st.sampled_from(sorted(fields)).flatmap(broken)
    return anything | near_valid | near_valid


_DROP = object()
VALID_MESSAGES = [{"role": "user", "content": "hi"}]
CHAT = _body(
    {
        "model": models,
        "messages": messages,
        "max_tokens": max_tokens,
        "max_completion_tokens": max_tokens,
        "n": json_values,
        "stream": json_values | st.booleans(),
        "stream_options": json_values,
        "temperature": json_values,
        "tools": json_values,
    },
    {"model": "gpt-4o-mini", "messages": VALID_MESSAGES, "max_tokens": 5},
)
EMBEDDINGS = _body(
    {"model": models, "input": json_values | st.lists(json_values, max_size=3)},
    {"model": "gpt-4o-mini", "input": "hi"},
)
MESSAGES = _body(
    {
        "model": models,
        "messages": messages,
        "max_tokens": max_tokens,
        "system": json_values,
        "stream": json_values | st.booleans(),
        "stop_sequences": json_values,
        "tools": json_values,
    },
    {"model": "gpt-4o-mini", "messages": VALID_MESSAGES, "max_tokens": 5},
)


def raw_bodies(structured: st.SearchStrategy) -> st.SearchStrategy[bytes]:
    """Bodies as bytes: JSON of the structured strategy, or broken ones."""
    as_json = structured.map(lambda b: json.dumps(b).encode())
    top_level = json_values.map(lambda v: json.dumps(v).encode())  # not an object (mostly)
    nested = st.integers(min_value=100, max_value=200_000).map(
        lambda depth: b'{"model": ' + b"[" * depth + b"]" * depth + b"}"
    )
    bad_utf8 = st.binary(max_size=200).map(lambda b: b[:50] + b"\xff\xfe" + b[50:])
    inside = (
        st.binary(max_size=20)
        .map(lambda b: b"\xc3" + b + b"\xff")
        .map(
            lambda junk: b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "'
            + junk
            + b'"}], "max_tokens": 5}'
        )
    )
    huge = st.integers(min_value=LIMIT + 1, max_value=LIMIT * 4).map(
        lambda size: b'{"model": "gpt-4o-mini", "input": "' + b"a" * size + b'"}'
    )
    return st.one_of(as_json, as_json, as_json, top_level, nested, bad_utf8, inside, huge)


@pytest.fixture
def fuzz_target(gateway, upstream, tenant):
    one_route(upstream.base_url)
    upstream.mode = "400"
    wallet = Account.objects.get(org=tenant.org, currency="CREDIT", kind=AccountKind.WALLET)
    client = httpx.Client(
        base_url=gateway.url,
        headers={"authorization": f"Bearer {tenant.key}", "content-type": "application/json"},
        timeout=30,
    )
    before = wallet.posted
    yield client
    client.close()
    assert not UsageRecord.objects.filter(org=tenant.org, cost__gt=0).exists()
    wallet.refresh_from_db()
    assert wallet.posted == before and wallet.held == Decimal(0)


def _assert_openai_error(response: httpx.Response) -> None:
    event(f"{response.status_code} {response.json().get('error', {}).get('code')}")
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert isinstance(error["message"], str) and error["message"]


def _assert_anthropic_error(response: httpx.Response) -> None:
    event(f"{response.status_code} {response.text[:40]}")
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    data = response.json()
    assert data["type"] == "error"
    assert isinstance(data["error"]["type"], str) and data["error"]["message"]


@FUZZ
@given(body=raw_bodies(CHAT))
def test_chat_completions_bodies_always_get_an_openai_shaped_4xx(fuzz_target, body):
    client = fuzz_target
    _assert_openai_error(client.post("/v1/chat/completions", content=body))


@FUZZ
@given(body=raw_bodies(EMBEDDINGS))
def test_embeddings_bodies_always_get_an_openai_shaped_4xx(fuzz_target, body):
    client = fuzz_target
    _assert_openai_error(client.post("/v1/embeddings", content=body))


@FUZZ
@given(body=raw_bodies(MESSAGES))
def test_messages_bodies_always_get_an_anthropic_shaped_4xx(fuzz_target, body):
    client = fuzz_target
    _assert_anthropic_error(client.post("/v1/messages", content=body))


@FUZZ
@given(body=raw_bodies(MESSAGES))
def test_count_tokens_never_fails_with_5xx_and_never_charges(fuzz_target, body):
    """count_tokens is free: a well-formed body gets 200 with a count, the rest a 4xx."""
    client = fuzz_target
    response = client.post("/v1/messages/count_tokens", content=body)
    if response.status_code == 200:
        event("200")
        assert isinstance(response.json()["input_tokens"], int)
    else:
        _assert_anthropic_error(response)


@FUZZ
@given(request_id=st.text(max_size=80))
def test_generation_ids_of_any_text_get_a_404_or_400_never_a_500(fuzz_target, request_id):
    response = fuzz_target.get("/v1/generation", params={"id": request_id})
    _assert_openai_error(response)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/chat/completions",
            {"model": "gpt\x00", "messages": [{"role": "user", "content": "hi"}]},
        ),
        ("/v1/embeddings", {"model": "\x00", "input": "hi"}),
        (
            "/v1/messages",
            {"model": "\x00", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        ),
        (
            "/v1/messages/count_tokens",
            {"model": "\x00", "messages": [{"role": "user", "content": "hi"}]},
        ),
    ],
)
def test_a_nul_character_in_the_model_name_is_a_4xx(fuzz_target, path, body):
    response = fuzz_target.post(path, json=body)
    assert 400 <= response.status_code < 500, response.text


items = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(
                ["message", "function_call", "function_call_output", "reasoning", "x"]
            )
            | json_values,
            "role": roles | st.just("developer"),
            "content": json_values
            | st.text()
            | st.lists(
                st.fixed_dictionaries(
                    {"type": st.sampled_from(["input_text", "input_image", "input_file", "y"])},
                    optional={"text": json_values, "image_url": json_values},
                ),
                max_size=2,
            ),
            "call_id": json_values,
            "name": json_values,
            "arguments": json_values,
            "output": json_values,
        },
    )
    | json_values,
    max_size=3,
)
RESPONSES = _body(
    {
        "model": models,
        "input": st.text() | items | json_values,
        "instructions": json_values,
        "max_output_tokens": max_tokens,
        "stream": json_values | st.booleans(),
        "tools": json_values
        | st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["function", "namespace", "web_search"]) | json_values},
                optional={"name": json_values, "parameters": json_values, "tools": json_values},
            ),
            max_size=2,
        ),
        "tool_choice": json_values,
        "text": json_values | st.fixed_dictionaries({"format": json_values}),
        "reasoning": json_values,
        "previous_response_id": json_values,
        "include": json_values,
        "store": json_values,
    },
    {"model": "gpt-4o-mini", "input": "hi", "max_output_tokens": 16},
)


@FUZZ
@given(body=raw_bodies(RESPONSES))
def test_responses_bodies_always_get_an_openai_shaped_4xx(fuzz_target, body):
    client = fuzz_target
    _assert_openai_error(client.post("/v1/responses", content=body))
