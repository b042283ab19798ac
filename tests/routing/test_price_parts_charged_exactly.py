"""Every token class an upstream reports is priced at its own part, and the charge equals the
hand-computed sum to the smallest unit: Anthropic cache reads and 5-minute / 1-hour writes
(the real `anthropic` SDK with Claude Code's request shape, natively and through the OpenAI
surface, streamed and not), OpenAI reasoning and cached tokens, Gemini thoughts and cached
content, and a long prompt crossing a tier. Each surface reports the classes in its own shape."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import anthropic
import pytest

from ledger.models import UsageRecord
from ledger.money import to_money
from tests.mocks.anthropic_upstream import MockAnthropic
from tests.mocks.gemini_upstream import MockGemini
from tests.routing.conftest import apply

pytestmark = pytest.mark.django_db(transaction=True)

FIXTURE = Path("/work/shared/fixtures/claude-code-2.1.328-messages.json")
M = Decimal(1_000_000)


def claude_code_request(*, stream: bool) -> tuple[dict, list[str]]:
    """Claude Code 2.1.328's first request (system blocks with cache_control, twelve tools,
    adaptive thinking, context_management, output_config, metadata) and its beta list. Its
    `system`-role turn inside `messages` is folded into `system` here: taking that role as it
    is belongs to the /v1/messages passthrough work (issue 13), not to pricing."""
    captured = json.loads(FIXTURE.read_text())
    body = dict(captured["body"])
    system = list(body.get("system") or [])
    messages = []
    for message in body["messages"]:
        if message["role"] == "system":
            system.extend(message["content"])
        else:
            messages.append(message)
    body.update(model="claude-pub", messages=messages, system=system, stream=stream)
    body["max_tokens"] = 1024
    betas = captured["headers"]["anthropic-beta"].split(",")
    return body, betas


@pytest.fixture(scope="module")
def _claude():
    server = MockAnthropic(input_tokens=21, output_tokens=11).start()
    yield server
    server.stop()


@pytest.fixture
def claude(_claude) -> MockAnthropic:
    """An Anthropic upstream reporting 1000 cache reads and 500 cache writes, 200 of them
    to the 1-hour cache; the route sets only input and output, so the cache parts follow
    Anthropic's rule: read 0.1×, 5-minute write 1.25×, 1-hour write 2× input."""
    _claude.reset()
    _claude.cache_read_input_tokens = 1000
    _claude.cache_creation_input_tokens = 500
    _claude.cache_write_1h_tokens = 200
    apply(
        [{"name": "claude-up", "provider": "anthropic", "base_url": _claude.base_url}],
        [
            {
                "name": "claude-pub",
                "routes": [
                    {
                        "upstream": "claude-up",
                        "model": "claude-sonnet-4-5",
                        "price": {"input": "3", "output": "15"},
                    }
                ],
            }
        ],
    )
    return _claude


# 21 fresh input × 3 + 1000 reads × 0.30 + 300 5-minute writes × 3.75 + 200 1-hour writes × 6
# + 11 output × 15, per 1M tokens.
CLAUDE_COST = (
    Decimal(21) * 3
    + Decimal(1000) * Decimal("0.3")
    + Decimal(300) * Decimal("3.75")
    + Decimal(200) * 6
    + Decimal(11) * 15
) / M


def _anthropic(gateway, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)


def _assert_claude_record(request_id: str, *, stream: bool) -> UsageRecord:
    record = UsageRecord.objects.get(request_id=request_id)
    assert record.cost == to_money(CLAUDE_COST) == Decimal("0.002853")
    assert (record.prompt_tokens, record.cached_tokens) == (1521, 1000)
    assert (record.cache_write_tokens, record.cache_write_1h_tokens) == (300, 200)
    assert record.completion_tokens == 11 and record.stream is stream
    parts = record.price_parts
    assert parts["cached_input"] == "0.3000000000" and parts["cache_write"] == "3.7500000000"
    assert parts["cache_write_1h"] == "6.0000000000"
    assert parts["defaulted"] == ["cache_write", "cache_write_1h", "cached_input"]
    assert parts["upstream_cost"] == "0.0028530000" and parts["tier"] is None
    return record


def test_the_anthropic_sdk_with_claude_codes_request_is_charged_every_cache_class_exactly(
    gateway, claude, tenant
):
    body, betas = claude_code_request(stream=False)
    body.pop("stream")
    raw = _anthropic(gateway, tenant.key).beta.messages.with_raw_response.create(
        **body, betas=betas
    )
    message = raw.parse()
    assert message.usage.input_tokens == 21
    assert message.usage.cache_read_input_tokens == 1000
    assert message.usage.cache_creation_input_tokens == 500
    assert message.usage.cache_creation.ephemeral_5m_input_tokens == 300
    assert message.usage.cache_creation.ephemeral_1h_input_tokens == 200
    assert Decimal(raw.headers["x-tokenforge-cost"]) == CLAUDE_COST
    _assert_claude_record(raw.headers["x-request-id"], stream=False)


def test_a_streamed_claude_code_request_reports_the_cache_fields_unchanged_and_is_charged_exactly(
    gateway, claude, tenant
):
    body, betas = claude_code_request(stream=True)
    body.pop("stream")
    client = _anthropic(gateway, tenant.key)
    with client.beta.messages.stream(**body, betas=betas) as stream:
        request_id = stream.response.headers["x-request-id"]
        final = stream.get_final_message()
    assert final.usage.input_tokens == 21 and final.usage.output_tokens == 11
    assert final.usage.cache_read_input_tokens == 1000
    assert final.usage.cache_creation_input_tokens == 500
    assert final.usage.cache_creation.ephemeral_1h_input_tokens == 200
    _assert_claude_record(request_id, stream=True)


def test_claude_through_chat_completions_reports_cache_reads_and_writes_apart_and_charges_them(
    gateway, claude, tenant
):
    raw = gateway.client(tenant.key).chat.completions.with_raw_response.create(
        model="claude-pub", messages=[{"role": "user", "content": "hi"}], max_tokens=30
    )
    completion = raw.parse()
    assert completion.usage.prompt_tokens == 1521
    assert completion.usage.prompt_tokens_details.cached_tokens == 1000
    assert completion.usage.prompt_tokens_details.cache_write_tokens == 500
    assert Decimal(raw.headers["x-tokenforge-cost"]) == CLAUDE_COST
    _assert_claude_record(raw.headers["x-request-id"], stream=False)


def test_claude_streamed_through_chat_completions_is_charged_every_cache_class(
    gateway, claude, tenant
):
    response = gateway.client(tenant.key).chat.completions.with_raw_response.create(
        model="claude-pub",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=30,
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = [chunk.usage for chunk in response.parse() if chunk.usage][-1]
    assert usage.prompt_tokens == 1521 and usage.prompt_tokens_details.cached_tokens == 1000
    _assert_claude_record(response.headers["x-request-id"], stream=True)


# --- OpenAI: reasoning and cached tokens -----------------------------------------------------


@pytest.fixture
def o3(upstream):
    """An OpenAI upstream reporting 1200 prompt tokens (1024 cached) and 300 completion tokens
    (200 of them reasoning), and its own cost (OpenRouter-style `usage.cost`). The route prices
    reasoning apart and leaves cached input to the catalog: o3's cache read is 0.25 × input."""
    upstream.prompt_tokens, upstream.completion_tokens, upstream.cached_tokens = 1200, 300, 1024
    upstream.usage_extra = {
        "completion_tokens_details": {"reasoning_tokens": 200, "audio_tokens": 0},
        "cost": 0.0033,
    }
    apply(
        [{"name": "oai", "provider": "openai", "base_url": upstream.base_url}],
        [
            {
                "name": "o3-pub",
                "routes": [
                    {
                        "upstream": "oai",
                        "model": "o3",
                        "price": {"input": "2", "output": "8", "reasoning": "9"},
                    }
                ],
            }
        ],
    )
    return upstream


# 176 fresh × 2 + 1024 cached × 0.5 + 100 output × 8 + 200 reasoning × 9, per 1M.
O3_COST = (Decimal(176) * 2 + Decimal(1024) * Decimal("0.5") + 100 * 8 + 200 * 9) / M


def _assert_o3_record(request_id: str) -> None:
    record = UsageRecord.objects.get(request_id=request_id)
    assert record.cost == to_money(O3_COST) == Decimal("0.003464")
    assert (record.cached_tokens, record.reasoning_tokens) == (1024, 200)
    assert record.price_parts["cached_input"] == "0.5000000000"
    assert record.price_parts["defaulted"] == ["cached_input"]
    assert record.price_parts["reasoning"] == "9.0000000000"
    assert record.reported_cost == Decimal("0.0033")


def test_openai_reasoning_and_cached_tokens_are_charged_at_their_parts(gateway, o3, tenant):
    raw = gateway.client(tenant.key).chat.completions.with_raw_response.create(
        model="o3-pub", messages=[{"role": "user", "content": "think"}], max_tokens=400
    )
    completion = raw.parse()
    assert completion.usage.completion_tokens_details.reasoning_tokens == 200
    assert completion.usage.prompt_tokens_details.cached_tokens == 1024
    assert Decimal(raw.headers["x-tokenforge-cost"]) == O3_COST
    _assert_o3_record(raw.headers["x-request-id"])


def test_streamed_openai_reasoning_tokens_are_charged_and_reported(gateway, o3, tenant):
    response = gateway.client(tenant.key).chat.completions.with_raw_response.create(
        model="o3-pub",
        messages=[{"role": "user", "content": "think"}],
        max_tokens=400,
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = [chunk.usage for chunk in response.parse() if chunk.usage][-1]
    assert usage.completion_tokens_details.reasoning_tokens == 200
    _assert_o3_record(response.headers["x-request-id"])


def test_openai_cached_tokens_reach_the_messages_surface_as_cache_reads(gateway, o3, tenant):
    raw = _anthropic(gateway, tenant.key).messages.with_raw_response.create(
        model="o3-pub", max_tokens=400, messages=[{"role": "user", "content": "think"}]
    )
    usage = raw.parse().usage
    assert (usage.input_tokens, usage.cache_read_input_tokens) == (176, 1024)
    assert usage.cache_creation_input_tokens == 0 and usage.output_tokens == 300
    _assert_o3_record(raw.headers["x-request-id"])


# --- Gemini: thoughts, cached content, tool-use prompt, and a tier ---------------------------


@pytest.fixture(scope="module")
def _gemini():
    server = MockGemini().start()
    yield server
    server.stop()


@pytest.fixture
def gemini(_gemini) -> MockGemini:
    """Gemini 2.5 Pro at its list price with its long-context tier; cached input is left to
    the catalog (0.1 × input, and 0.1 × the tier's input above 200k)."""
    _gemini.reset()
    apply(
        [{"name": "gem", "provider": "gemini", "base_url": _gemini.base_url}],
        [
            {
                "name": "gemini-pub",
                "routes": [
                    {
                        "upstream": "gem",
                        "model": "gemini-2.5-pro",
                        "price": {
                            "input": "1.25",
                            "output": "10",
                            "tiers": [
                                {"above_input_tokens": 200000, "input": "2.5", "output": "15"}
                            ],
                        },
                    }
                ],
            }
        ],
    )
    return _gemini


@pytest.mark.parametrize("stream", [False, True])
def test_gemini_thoughts_cached_content_and_tool_use_prompt_are_charged_exactly(
    gateway, gemini, tenant, stream
):
    gemini.prompt_tokens, gemini.output_tokens = 1000, 8
    gemini.cached_tokens, gemini.thoughts_tokens, gemini.tool_use_tokens = 600, 40, 50
    client = gateway.client(tenant.key)
    options = {"model": "gemini-pub", "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        response = client.chat.completions.with_raw_response.create(
            **options, stream=True, stream_options={"include_usage": True}
        )
        usage = [chunk.usage for chunk in response.parse() if chunk.usage][-1]
    else:
        response = client.chat.completions.with_raw_response.create(**options)
        usage = response.parse().usage
    assert usage.prompt_tokens == 1050 and usage.completion_tokens == 48
    assert usage.prompt_tokens_details.cached_tokens == 600
    assert usage.completion_tokens_details.reasoning_tokens == 40
    # 450 fresh (incl. 50 tool-use prompt) × 1.25 + 600 cached × 0.125 + 48 output × 10
    expected = (Decimal(450) * Decimal("1.25") + Decimal(600) * Decimal("0.125") + 48 * 10) / M
    record = UsageRecord.objects.get(request_id=response.headers["x-request-id"])
    assert record.cost == to_money(expected)
    assert (record.cached_tokens, record.reasoning_tokens) == (600, 40)
    assert record.price_parts["defaulted"] == ["cached_input", "reasoning"]


def test_a_long_prompt_crossing_the_tier_is_charged_at_the_tiers_prices(gateway, gemini, tenant):
    gemini.prompt_tokens, gemini.output_tokens = 250_000, 100
    gemini.cached_tokens, gemini.thoughts_tokens = 100_000, 20
    raw = gateway.client(tenant.key).chat.completions.with_raw_response.create(
        model="gemini-pub", messages=[{"role": "user", "content": "a long prompt"}]
    )
    # above 200k input tokens: input 2.5, output 15, cached 0.25 (Google's list: 2.5e-7/token)
    expected = (
        Decimal(150_000) * Decimal("2.5") + Decimal(100_000) * Decimal("0.25") + 120 * 15
    ) / M
    assert Decimal(raw.headers["x-tokenforge-cost"]) == expected == Decimal("0.4018")
    record = UsageRecord.objects.get(request_id=raw.headers["x-request-id"])
    assert record.cost == to_money(expected)
    assert record.price_parts["tier"] == {"above_input_tokens": 200000}
    assert (record.price_input, record.price_output) == (Decimal("2.5"), Decimal("15"))
    assert record.price_parts["cached_input"] == "0.2500000000"


def test_a_prompt_at_the_threshold_keeps_the_base_prices(gateway, gemini, tenant):
    gemini.prompt_tokens, gemini.output_tokens = 200_000, 10
    raw = gateway.client(tenant.key).chat.completions.with_raw_response.create(
        model="gemini-pub", messages=[{"role": "user", "content": "exactly at the line"}]
    )
    expected = (Decimal(200_000) * Decimal("1.25") + 10 * 10) / M
    assert Decimal(raw.headers["x-tokenforge-cost"]) == expected
    assert (
        UsageRecord.objects.get(request_id=raw.headers["x-request-id"]).price_parts["tier"] is None
    )


def test_the_requests_story_shows_the_formula_line_by_line_and_the_defaulted_parts(
    gateway, claude, tenant
):
    from django.test import Client
    from django.urls import reverse

    from accounts.models import Role
    from tests.factories import MembershipFactory

    raw = gateway.client(tenant.key).chat.completions.with_raw_response.create(
        model="claude-pub", messages=[{"role": "user", "content": "hi"}], max_tokens=30
    )
    owner = MembershipFactory(org=tenant.org, role=Role.OWNER).user
    client = Client()
    client.force_login(owner)
    page = client.get(reverse("ledger:request_detail", args=[raw.headers["x-request-id"]]))
    assert page.status_code == 200
    html = page.content.decode()
    table = html[
        html.index('id="cost-formula"') : html.index("</table>", html.index("cost-formula"))
    ]
    for label, tokens, price, amount in (
        ("Input (fresh)", "21", "3.00", "0.000063"),
        ("Cache read", "1000", "0.30", "0.0003"),
        ("Cache write (5 min)", "300", "3.75", "0.001125"),
        ("Cache write (1 hour)", "200", "6.00", "0.0012"),
        ("Output", "11", "15.00", "0.000165"),
    ):
        row = table[table.index(label) :]
        row = row[: row.index("</tr>")]
        assert f">{tokens}<" in row and f"× {price}" in row and f">{amount}<" in row, row
    assert ">0.002853<" in table  # the sum of the lines, then × 1.00 = the cost
    assert "(default)" in table and "1.25 × input (Anthropic&#x27;s rule)" in html


@pytest.mark.parametrize("stream", [False, True])
def test_a_relays_cost_header_is_stored_as_the_reported_cost(gateway, upstream, tenant, stream):
    upstream.answer_headers = [(b"x-litellm-response-cost", b"0.000123")]
    apply(
        [{"name": "litellm-relay", "base_url": upstream.base_url}],
        [
            {
                "name": "relay-pub",
                "routes": [{"upstream": "litellm-relay", "price": {"input": "1", "output": "2"}}],
            }
        ],
    )
    response = gateway.client(tenant.key).chat.completions.with_raw_response.create(
        model="relay-pub", messages=[{"role": "user", "content": "hi"}], stream=stream
    )
    if stream:
        list(response.parse())
    record = UsageRecord.objects.get(request_id=response.headers["x-request-id"])
    assert record.reported_cost == Decimal("0.000123")
    assert record.price_parts["upstream_cost"] == format(record.cost, "f")
