"""The hold bounds what an answer can cost (issue 12, section 2): it is sized from the body
exactly as it goes upstream, counting every input kind, and the output limit the upstream is
sent is always the one the hold paid for. Each test reproduces one finding of the review."""

from __future__ import annotations

import base64
import os
import uuid
from decimal import Decimal

import pytest

from ledger.models import AccountKind, BudgetCounter, Hold, Posting, UsageRecord
from ledger.services.budgets import budget_set
from routing.auth import key_context_for
from routing.engine import completion_create, embeddings_create
from routing.errors import GatewayError
from tests.mocks.anthropic_upstream import MockAnthropic
from tests.mocks.gemini_upstream import MockGemini
from tests.mocks.openai_upstream import MockOpenAI
from tests.routing.conftest import apply, make_tenant
from tests.routing.test_engine_in_process import run

pytestmark = pytest.mark.django_db(transaction=True)

MSG = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def mocks():
    servers = {"openai": MockOpenAI(), "anthropic": MockAnthropic(), "gemini": MockGemini()}
    for server in servers.values():
        server.start()
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def routes(mocks):
    for server in mocks.values():
        server.reset()
    apply(
        [
            {"name": "relay", "base_url": mocks["openai"].base_url},
            {"name": "claude", "provider": "anthropic", "base_url": mocks["anthropic"].base_url},
            {"name": "gem", "provider": "gemini", "base_url": mocks["gemini"].base_url},
        ],
        [
            {
                "name": "emb",
                "routes": [
                    {"upstream": "relay", "model": "e", "price": {"input": "200", "output": "0"}}
                ],
            },
            {
                "name": "claude-pub",
                "routes": [
                    {"upstream": "claude", "model": "c", "price": {"input": "15", "output": "75"}}
                ],
            },
            {
                "name": "claude-capped",
                "max_output_tokens": 1000,
                "routes": [
                    {"upstream": "claude", "model": "c", "price": {"input": "15", "output": "75"}}
                ],
            },
            {
                "name": "gemini-pub",
                "max_output_tokens": 2048,
                "routes": [
                    {"upstream": "gem", "model": "g", "price": {"input": "1.25", "output": "10"}}
                ],
            },
            {
                "name": "gemini-open",
                "routes": [
                    {"upstream": "gem", "model": "g", "price": {"input": "1.25", "output": "10"}}
                ],
            },
        ],
    )
    return mocks


def _shortfall() -> Decimal:
    legs = Posting.objects.filter(account__kind=AccountKind.SHORTFALL)
    return -sum((p.amount for p in legs), Decimal(0))


def _rid() -> str:
    return "req_" + uuid.uuid4().hex


def test_token_id_embeddings_are_held_one_token_per_id_so_a_small_key_budget_refuses_them(
    routes, monkeypatch
):
    monkeypatch.setattr(routes["openai"], "prompt_tokens", 3000)  # what the upstream reports
    t = make_tenant()
    budget_set(org=t.org, currency="CREDIT", amount="1", period="total", api_key=t.api_key)
    ctx = key_context_for(org_id=t.org.pk, project_id=t.project.pk, api_key_id=t.api_key.pk)
    body = {"model": "emb", "input": [list(range(1000)) for _ in range(3)]}  # 3,000 token ids
    outcomes = []
    for _ in range(3):
        try:
            run(embeddings_create(ctx=ctx, body=body, request_id=_rid()))
            outcomes.append(200)
        except GatewayError as exc:
            outcomes.append((exc.status, exc.code))
    # Each request costs 0.6 of the key's 1.0: the second and third are refused up front.
    assert outcomes == [200, (402, "budget_exceeded"), (402, "budget_exceeded")]
    assert _shortfall() == 0
    counter = BudgetCounter.objects.get(budget__api_key=t.api_key)
    assert counter.spent == Decimal("0.6") and counter.reserved == 0


def test_a_59_kb_document_is_held_by_its_size_not_a_flat_1600_tokens(routes, monkeypatch):
    monkeypatch.setattr(routes["anthropic"], "input_tokens", 40_000)  # ~15 PDF pages
    t = make_tenant()
    ctx = key_context_for(org_id=t.org.pk, project_id=t.project.pk)
    pdf = base64.b64encode(os.urandom(59 * 1024 * 3 // 4)).decode()  # 59 KB of base64
    body = {
        "model": "claude-pub",
        "max_tokens": 100,
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": pdf},
                    },
                    {"type": "text", "text": "Summarise this."},
                ],
            }
        ],
    }
    rid = _rid()
    result = run(completion_create(ctx=ctx, body=body, request_id=rid, surface="anthropic"))
    assert result.cost == Decimal(40_000 * 15 + 11 * 75) / 1_000_000
    assert Hold.objects.get(request_id=rid).amount >= result.cost
    assert _shortfall() == 0
    assert UsageRecord.objects.get(request_id=rid).anomalies == []


def test_input_audio_and_file_parts_count_by_their_size():
    from routing.request_bounds import prompt_tokens_upper

    audio = base64.b64encode(b"\0" * 48_000).decode()
    small = {"messages": [{"role": "user", "content": "hi"}]}
    with_audio = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}}
                ],
            }
        ]
    }
    with_file = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64," + audio}}
                ],
            }
        ]
    }
    assert prompt_tokens_upper(with_audio) > prompt_tokens_upper(small) + len(audio) // 8
    assert prompt_tokens_upper(with_file) > 2 * len(audio)


def test_max_completion_tokens_wins_over_max_tokens_for_the_hold_and_the_upstream(
    routes, monkeypatch
):
    monkeypatch.setattr(routes["anthropic"], "output_tokens", 60_000)
    t = make_tenant(credit="100")
    ctx = key_context_for(org_id=t.org.pk, project_id=t.project.pk)
    rid = _rid()
    body = {"model": "claude-pub", "messages": MSG, "max_tokens": 1, "max_completion_tokens": 60000}
    result = run(completion_create(ctx=ctx, body=body, request_id=rid))
    sent = routes["anthropic"].requests[-1]["body"]
    assert sent["max_tokens"] == 60000  # what the hold paid for, and nothing more
    hold = Hold.objects.get(request_id=rid)
    assert hold.amount >= Decimal(60000 * 75) / 1_000_000
    assert result.cost <= hold.amount and _shortfall() == 0


def test_a_client_limit_above_the_models_is_clamped_before_it_goes_upstream(routes):
    t = make_tenant()
    ctx = key_context_for(org_id=t.org.pk, project_id=t.project.pk)
    rid = _rid()
    body = {"model": "claude-capped", "messages": MSG, "max_tokens": 60000}
    run(completion_create(ctx=ctx, body=body, request_id=rid))
    assert routes["anthropic"].requests[-1]["body"]["max_tokens"] == 1000
    hold = Hold.objects.get(request_id=rid).amount
    assert Decimal(1000 * 75) / 1_000_000 < hold < Decimal(1000 * 75 + 200 * 15) / 1_000_000


@pytest.mark.parametrize(("model", "limit"), [("gemini-pub", 2048), ("gemini-open", 4096)])
def test_gemini_always_gets_the_output_limit_its_hold_paid_for(routes, monkeypatch, model, limit):
    monkeypatch.setattr(routes["gemini"], "output_tokens", limit)
    t = make_tenant()
    ctx = key_context_for(org_id=t.org.pk, project_id=t.project.pk)
    rid = _rid()
    result = run(completion_create(ctx=ctx, body={"model": model, "messages": MSG}, request_id=rid))
    sent = routes["gemini"].requests[-1]["body"]
    assert sent["generationConfig"]["maxOutputTokens"] == limit
    assert result.cost <= Hold.objects.get(request_id=rid).amount and _shortfall() == 0


def test_a_hold_pays_input_at_the_largest_input_side_price_part():
    from routing.pricing import Prices, hold_amount

    prices = Prices(
        input=Decimal("3"),
        cached_input=Decimal("0.3"),
        cache_write=Decimal("3.75"),
        cache_write_1h=Decimal("6"),
        output=Decimal("15"),
    )
    amount = hold_amount(
        prices=prices, multiplier=Decimal(1), prompt_upper=1_000_000, completion_upper=0
    )
    assert amount == Decimal("6")


def test_an_upstream_that_reports_more_than_it_was_allowed_shows_as_shortfall_and_alerts(
    routes, monkeypatch
):
    from django.test import Client
    from django.urls import reverse

    from accounts.models import AuditEvent
    from ledger.selectors_operator import date_range_default, shortfall_by_upstream
    from tests.factories import UserFactory

    monkeypatch.setattr(routes["anthropic"], "output_tokens", 5000)  # it was sent max_tokens=10
    t = make_tenant()
    ctx = key_context_for(org_id=t.org.pk, project_id=t.project.pk)
    rid = _rid()
    body = {"model": "claude-pub", "messages": MSG, "max_tokens": 10}
    result = run(completion_create(ctx=ctx, body=body, request_id=rid))
    hold = Hold.objects.get(request_id=rid)
    assert result.cost > hold.amount and _shortfall() == result.cost - hold.amount
    assert {"kind": "cost_above_hold"} in UsageRecord.objects.get(request_id=rid).anomalies
    event = AuditEvent.objects.get(action="ledger.shortfall")
    assert event.changes["upstream"] == "claude" and event.changes["request_id"] == rid
    rows = shortfall_by_upstream(window=date_range_default())
    assert rows == [
        {
            "wallet": "CREDIT",
            "upstream": "claude",
            "requests": 1,
            "shortfall": result.cost - hold.amount,
        }
    ]
    operator = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(operator)
    html = client.get(reverse("admin_overview")).content.decode()
    assert "Shortfall per upstream" in html and 'id="overview-shortfalls"' in html
