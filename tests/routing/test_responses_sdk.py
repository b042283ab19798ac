"""`/v1/responses` driven by the real `openai` SDK (3.x) and the `openai-agents` SDK, on an
OpenAI-format relay, an Anthropic and a Gemini mock upstream over HTTP: text, a function-tool
round trip, a JSON-schema format, `previous_response_id` and `responses.stream(...)`; the
ledger records exactly the usage each answer reports."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import openai
import pytest

from ledger.models import UsageRecord
from tests.mocks.anthropic_upstream import MockAnthropic
from tests.mocks.gemini_upstream import MockGemini
from tests.mocks.openai_upstream import MockOpenAI
from tests.routing.conftest import apply

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "agent-model"
PRICE = {"input": "2", "output": "8"}
WEATHER = {
    "type": "function",
    "name": "weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city", "days"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def _mocks():
    servers = {"relay": MockOpenAI(), "anthropic": MockAnthropic(), "gemini": MockGemini()}
    for server in servers.values():
        server.start()
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(params=["relay", "anthropic", "gemini"])
def upstream_kind(request, _mocks):
    kind = request.param
    server = _mocks[kind]
    server.reset()
    if kind == "relay":
        server.echo_tools = True
    provider = {"relay": "openai-compatible", "anthropic": "anthropic", "gemini": "gemini"}[kind]
    apply(
        [{"name": f"{kind}-up", "provider": provider, "base_url": server.base_url}],
        [{"name": MODEL, "routes": [{"upstream": f"{kind}-up", "model": "up-1", "price": PRICE}]}],
    )
    return kind, server


def _last_record(org) -> UsageRecord:
    return UsageRecord.objects.filter(org=org).order_by("-created_at", "-id").first()


def _assert_ledger_matches(org, usage) -> UsageRecord:
    record = _last_record(org)
    assert record.endpoint == "responses"
    assert record.status == "settled" and not record.estimated
    assert record.prompt_tokens == usage.input_tokens
    assert record.completion_tokens == usage.output_tokens
    assert record.cached_tokens == usage.input_tokens_details.cached_tokens
    expected = (Decimal(usage.input_tokens) * 2 + Decimal(usage.output_tokens) * 8) / 1_000_000
    assert record.cost == expected
    return record


def test_responses_create_answers_text_and_the_ledger_matches_its_usage(
    gateway, upstream_kind, tenant
):
    kind, server = upstream_kind
    raw = gateway.client(tenant.key).responses.with_raw_response.create(
        model=MODEL, input="Say hello", instructions="Be brief.", max_output_tokens=64
    )
    response = raw.parse()
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.model == MODEL
    assert response.output_text.startswith("Hello from the")
    assert response.output[0].type == "message" and response.output[0].role == "assistant"
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert raw.headers["x-tokenforge-route"] == f"{kind}-up/up-1"
    assert raw.headers["x-tokenforge-wallet"] == "CREDIT"
    record = _assert_ledger_matches(tenant.org, response.usage)
    assert Decimal(raw.headers["x-tokenforge-cost"]) == record.cost
    assert record.request_id == raw.headers["x-request-id"]


def test_a_function_tool_round_trip_through_previous_response_id(gateway, upstream_kind, tenant):
    kind, server = upstream_kind
    client = gateway.client(tenant.key)
    first = client.responses.create(model=MODEL, input="Weather in Paris?", tools=[WEATHER])
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "weather"
    assert json.loads(calls[0].arguments) == {"city": "Paris"}
    assert calls[0].call_id
    _assert_ledger_matches(tenant.org, first.usage)
    second = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"}],
    )
    assert second.output_text == "Tool said: sunny"
    assert second.previous_response_id == first.id
    _assert_ledger_matches(tenant.org, second.usage)
    # The upstream saw the whole conversation: the question, the call and its result.
    sent = json.dumps(server.requests[-1]["body"])
    assert "Weather in Paris?" in sent and "sunny" in sent
    assert UsageRecord.objects.filter(org=tenant.org, endpoint="responses").count() == 2


def test_a_json_schema_format_answers_json_that_fits_it(gateway, upstream_kind, tenant):
    kind, server = upstream_kind
    response = gateway.client(tenant.key).responses.create(
        model=MODEL,
        input="A forecast please",
        text={
            "format": {"type": "json_schema", "name": "forecast", "schema": SCHEMA, "strict": True}
        },
    )
    data = json.loads(response.output_text)
    assert set(data) == {"city", "days"} and isinstance(data["days"], int)
    sent = server.requests[-1]["body"]
    if kind == "relay":
        assert sent["response_format"]["json_schema"]["schema"] == SCHEMA
    elif kind == "anthropic":
        assert sent["output_config"]["format"] == {"type": "json_schema", "schema": SCHEMA}
    else:
        assert sent["generationConfig"]["responseMimeType"] == "application/json"
    _assert_ledger_matches(tenant.org, response.usage)


def test_previous_response_id_continues_the_conversation(gateway, upstream_kind, tenant):
    kind, server = upstream_kind
    client = gateway.client(tenant.key)
    first = client.responses.create(model=MODEL, input="My name is Ada.")
    second = client.responses.create(
        model=MODEL, previous_response_id=first.id, input="What is my name?"
    )
    assert second.status == "completed"
    sent = json.dumps(server.requests[-1]["body"])
    assert "My name is Ada." in sent and first.output_text in sent and "What is my name?" in sent
    assert client.responses.retrieve(second.id).output_text == second.output_text
    _assert_ledger_matches(tenant.org, second.usage)


def test_responses_stream_sends_typed_events_in_order_and_is_billed_as_reported(
    gateway, upstream_kind, tenant
):
    kind, server = upstream_kind
    client = gateway.client(tenant.key)
    kinds, deltas, numbers = [], [], []
    with client.responses.stream(model=MODEL, input="Say hello") as stream:
        for event in stream:
            kinds.append(event.type)
            numbers.append(event.sequence_number)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert numbers == list(range(len(numbers)))
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert len(deltas) > 3 and "".join(deltas) == final.output_text
    assert final.output_text.startswith("Hello from the") and final.status == "completed"
    record = _assert_ledger_matches(tenant.org, final.usage)
    assert record.stream
    assert client.responses.retrieve(final.id).output_text == final.output_text


def test_a_streamed_function_call_has_its_arguments_events(gateway, upstream_kind, tenant):
    kind, server = upstream_kind
    client = gateway.client(tenant.key)
    with client.responses.stream(model=MODEL, input="Weather?", tools=[WEATHER]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    done = kinds.index("response.function_call_arguments.done")
    assert kinds[done + 1] == "response.output_item.done" and kinds[-1] == "response.completed"
    call = next(item for item in final.output if item.type == "function_call")
    assert json.loads(call.arguments) == {"city": "Paris"}
    _assert_ledger_matches(tenant.org, final.usage)


def test_the_agents_sdk_runs_an_agent_with_one_function_tool(gateway, upstream_kind, tenant):
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

    kind, server = upstream_kind
    set_tracing_disabled(True)
    seen = []

    @function_tool
    def weather(city: str) -> str:
        """Weather for a city."""
        seen.append(city)
        return f"sunny in {city}"

    async def run():
        client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=tenant.key, max_retries=0)
        agent = Agent(
            name="forecaster",
            instructions="Answer with the weather.",
            tools=[weather],
            model=OpenAIResponsesModel(model=MODEL, openai_client=client),
        )
        try:
            return await Runner.run(agent, "Weather in Paris?")
        finally:
            await client.close()

    result = asyncio.run(run())
    assert seen == ["Paris"]
    assert result.final_output == "Tool said: sunny in Paris"
    records = list(UsageRecord.objects.filter(org=tenant.org).order_by("created_at", "id"))
    assert len(records) == 2 and all(r.endpoint == "responses" for r in records)
    reported = [r.usage for r in result.raw_responses]
    assert [(r.prompt_tokens, r.completion_tokens) for r in records] == [
        (u.input_tokens, u.output_tokens) for u in reported
    ]


def test_the_agents_sdk_streams_an_agent_run_with_one_function_tool(gateway, upstream_kind, tenant):
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

    kind, server = upstream_kind
    set_tracing_disabled(True)

    @function_tool
    def weather(city: str) -> str:
        """Weather for a city."""
        return f"rain in {city}"

    async def run():
        client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=tenant.key, max_retries=0)
        agent = Agent(
            name="forecaster",
            tools=[weather],
            model=OpenAIResponsesModel(model=MODEL, openai_client=client),
        )
        try:
            result = Runner.run_streamed(agent, "Weather in Paris?")
            kinds = [event.type async for event in result.stream_events()]
            return result, kinds
        finally:
            await client.close()

    result, kinds = asyncio.run(run())
    assert result.final_output == "Tool said: rain in Paris"
    assert "raw_response_event" in kinds and "run_item_stream_event" in kinds
    records = list(UsageRecord.objects.filter(org=tenant.org).order_by("created_at", "id"))
    assert len(records) == 2 and all(r.stream and r.endpoint == "responses" for r in records)
    reported = [r.usage for r in result.raw_responses]
    assert [(r.prompt_tokens, r.completion_tokens) for r in records] == [
        (u.input_tokens, u.output_tokens) for u in reported
    ]


def test_compact_summarises_the_conversation_on_any_upstream_and_is_billed(
    gateway, upstream_kind, tenant
):
    kind, server = upstream_kind
    client = gateway.client(tenant.key)
    history = [
        {"role": "user", "content": "Fix the failing test."},
        {"type": "function_call", "call_id": "c1", "name": "exec_command", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "1 failed"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Found it."}],
        },
    ]
    compacted = client.responses.compact(model=MODEL, input=history, instructions="You code.")
    assert compacted.object == "response.compaction" and compacted.id.startswith("resp_")
    assert [item.role for item in compacted.output] == ["user", "user"]
    assert compacted.output[0].content[0].text == "Fix the failing test."
    summary = compacted.output[1].content[0].text
    assert summary.startswith("Summary of the conversation so far") and "Hello from the" in summary
    sent = json.dumps(server.requests[-1]["body"])
    assert "1 failed" in sent and "Summarize the conversation above" in sent
    record = _last_record(tenant.org)
    assert record.endpoint == "responses.compact" and record.status == "settled"
    assert record.prompt_tokens == compacted.usage.input_tokens
    assert record.completion_tokens == compacted.usage.output_tokens
