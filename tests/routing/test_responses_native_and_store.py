"""`/v1/responses` forwarded natively to `openai` upstreams flagged `responses: true`
(hosted tools included), hosted tools dropped and named elsewhere, and stored responses:
GET, DELETE, input_items, org scoping, `store: false` and the retention sweep."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from django.conf import settings
from django.utils import timezone

from ledger.models import Account, AccountKind, Hold, UsageRecord
from routing.models import StoredResponse, Upstream
from routing.services import RoutingFileError, routing_apply, routing_export
from tests.routing.conftest import apply, make_tenant

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "gpt-4o-mini"
WEB = {"type": "web_search"}
FN = {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}


def _native(upstream, name: str = "openai-official") -> None:
    apply(
        [{"name": name, "provider": "openai", "base_url": upstream.base_url, "responses": True}],
        [
            {
                "name": MODEL,
                "routes": [
                    {"upstream": name, "model": "gpt-up", "price": {"input": "1", "output": "4"}}
                ],
            }
        ],
    )


def _relay(upstream) -> None:
    apply(
        [{"name": "relay-a", "base_url": upstream.base_url}],
        [
            {
                "name": MODEL,
                "routes": [
                    {
                        "upstream": "relay-a",
                        "model": "gpt-up",
                        "price": {"input": "1", "output": "4"},
                    }
                ],
            }
        ],
    )


def _post(gateway, key: str, body: dict, **kwargs) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/responses",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
        **kwargs,
    )


def _wallet(org) -> tuple[Decimal, Decimal]:
    wallet = Account.objects.get(org=org, currency="CREDIT", kind=AccountKind.WALLET)
    return wallet.posted, wallet.held


def test_an_upstream_flagged_responses_gets_the_request_natively_with_hosted_tools(
    gateway, upstream, tenant
):
    _native(upstream)
    client = gateway.client(tenant.key)
    raw = client.responses.with_raw_response.create(
        model=MODEL, input="News today?", tools=[WEB, FN], include=["reasoning.encrypted_content"]
    )
    response = raw.parse()
    sent = upstream.requests[-1]
    assert sent["path"] == "/v1/responses"
    assert sent["body"]["model"] == "gpt-up" and sent["body"]["tools"] == [WEB, FN]
    assert sent["body"]["include"] == ["reasoning.encrypted_content"]
    assert [item.type for item in response.output] == ["web_search_call", "message"]
    assert response.id.startswith("resp_") and response.model == MODEL
    assert "x-tokenforge-dropped" not in raw.headers
    record = UsageRecord.objects.get(request_id=raw.headers["x-request-id"])
    assert record.endpoint == "responses" and record.dropped == []
    assert (record.prompt_tokens, record.completion_tokens) == (
        response.usage.input_tokens,
        response.usage.output_tokens,
    )
    # previous_response_id is replayed from the store: the upstream never needs its own copy.
    client.responses.create(model=MODEL, previous_response_id=response.id, input="More?")
    replayed = upstream.requests[-1]["body"]
    assert "previous_response_id" not in replayed
    assert [i.get("type") for i in replayed["input"]] == [
        "message",
        "web_search_call",
        "message",
        "message",
    ]


def test_a_native_stream_passes_the_upstream_events_through_under_our_id(gateway, upstream, tenant):
    _native(upstream)
    with gateway.client(tenant.key).responses.stream(
        model=MODEL, input="News?", tools=[WEB]
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].response.id == final.id and final.id.startswith("resp_")
    assert any(
        e.type == "response.output_item.added" and e.item.type == "web_search_call" for e in events
    )
    assert final.output_text.startswith("Hello from the mock upstream")
    record = UsageRecord.objects.get(org=tenant.org)
    assert record.stream and record.status == "settled" and not record.estimated
    assert record.completion_tokens == final.usage.output_tokens == upstream.completion_tokens


def test_a_relay_gets_chat_completions_and_hosted_tools_are_dropped_and_named(
    gateway, upstream, tenant
):
    _relay(upstream)
    raw = gateway.client(tenant.key).responses.with_raw_response.create(
        model=MODEL, input="News?", tools=[WEB, FN], include=["reasoning.encrypted_content"]
    )
    assert raw.parse().output_text.startswith("Hello from the mock upstream")
    assert raw.headers["x-tokenforge-dropped"] == "web_search, include"
    sent = upstream.requests[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert [t["function"]["name"] for t in sent["body"]["tools"]] == ["lookup"]
    assert "_responses" not in sent["body"] and "include" not in sent["body"]
    record = UsageRecord.objects.get(request_id=raw.headers["x-request-id"])
    assert record.dropped == ["web_search", "include"]
    story = httpx.get(
        gateway.url + "/v1/generation",
        params={"id": raw.headers["x-request-id"]},
        headers={"authorization": f"Bearer {tenant.key}"},
    ).json()
    assert story["endpoint"] == "responses"
    with httpx.stream(
        "POST",
        gateway.url + "/v1/responses",
        json={"model": MODEL, "input": "News?", "tools": [WEB], "stream": True},
        headers={"authorization": f"Bearer {tenant.key}"},
        timeout=30,
    ) as streamed:
        assert streamed.headers["x-tokenforge-dropped"] == "web_search"
        assert streamed.headers["content-type"].startswith("text/event-stream")
        body = "".join(streamed.iter_text())
    assert body.startswith("event: response.created\n") and "event: response.completed" in body


def test_the_routing_file_takes_responses_only_on_openai_upstreams_and_exports_it(db, upstream):
    _native(upstream, name="official")
    assert Upstream.objects.get(name="official").responses is True
    exported = routing_export()
    assert exported["upstreams"][0]["responses"] is True
    with pytest.raises(RoutingFileError, match="responses"):
        routing_apply(
            data={
                "upstreams": [
                    {
                        "name": "r",
                        "provider": "openai-compatible",
                        "base_url": "http://x/v1",
                        "responses": True,
                    }
                ],
                "models": [],
            },
            env={},
        )


def test_a_stored_response_can_be_read_listed_and_deleted(gateway, upstream, tenant):
    _relay(upstream)
    client = gateway.client(tenant.key)
    created = client.responses.create(
        model=MODEL,
        input=[
            {"role": "developer", "content": "Be brief."},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        ],
        metadata={"ticket": "42"},
    )
    got = client.responses.retrieve(created.id)
    assert got.model_dump() == created.model_dump()
    assert got.metadata == {"ticket": "42"}
    items = client.responses.input_items.list(created.id)
    assert [i.role for i in items.data] == ["user", "developer"]  # newest first, as OpenAI
    assert all(i.id for i in items.data)
    ascending = client.responses.input_items.list(created.id, order="asc", limit=1)
    assert [i.role for i in ascending.data] == ["developer"] and ascending.has_more
    deleted = httpx.delete(
        f"{gateway.url}/v1/responses/{created.id}",
        headers={"authorization": f"Bearer {tenant.key}"},
    )
    assert deleted.json() == {"id": created.id, "object": "response.deleted", "deleted": True}
    missing = httpx.get(
        f"{gateway.url}/v1/responses/{created.id}",
        headers={"authorization": f"Bearer {tenant.key}"},
    )
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "invalid_request_error"


def test_another_organizations_response_is_not_found_anywhere_and_moves_no_money(
    gateway, upstream, tenant
):
    _relay(upstream)
    created = gateway.client(tenant.key).responses.create(model=MODEL, input="Secret plan")
    other = make_tenant()
    before = _wallet(other.org)
    headers = {"authorization": f"Bearer {other.key}"}
    for method, url in (
        ("GET", f"/v1/responses/{created.id}"),
        ("GET", f"/v1/responses/{created.id}/input_items"),
        ("DELETE", f"/v1/responses/{created.id}"),
    ):
        answer = httpx.request(method, gateway.url + url, headers=headers)
        assert answer.status_code == 404, (method, url)
        assert "Secret plan" not in answer.text
    answer = _post(
        gateway, other.key, {"model": MODEL, "previous_response_id": created.id, "input": "go on"}
    )
    assert answer.status_code == 404
    assert answer.json()["error"]["param"] == "previous_response_id"
    assert _wallet(other.org) == before
    assert not UsageRecord.objects.filter(org=other.org).exists()
    assert not Hold.objects.filter(org=other.org).exists()
    assert StoredResponse.objects.filter(pk=created.id).exists()


def test_store_false_keeps_no_content(gateway, upstream, tenant):
    _relay(upstream)
    client = gateway.client(tenant.key)
    created = client.responses.create(model=MODEL, input="Forget me", store=False)
    assert created.store is False
    assert not StoredResponse.objects.filter(pk=created.id).exists()
    answer = httpx.get(
        f"{gateway.url}/v1/responses/{created.id}",
        headers={"authorization": f"Bearer {tenant.key}"},
    )
    assert answer.status_code == 404
    with client.responses.stream(model=MODEL, input="Forget me too", store=False) as stream:
        final = stream.get_final_response()
    assert not StoredResponse.objects.filter(pk=final.id).exists()
    assert UsageRecord.objects.filter(org=tenant.org, endpoint="responses").count() == 2


def test_stored_responses_are_purged_after_the_retention_period(gateway, upstream, tenant):
    from routing.tasks import responses_purge

    _relay(upstream)
    client = gateway.client(tenant.key)
    old = client.responses.create(model=MODEL, input="old")
    new = client.responses.create(model=MODEL, input="new")
    days = settings.RESPONSES_RETENTION_DAYS
    assert days == 30
    StoredResponse.objects.filter(pk=old.id).update(
        created_at=timezone.now() - timedelta(days=days, minutes=1)
    )
    assert responses_purge() == 1
    assert list(StoredResponse.objects.values_list("id", flat=True)) == [new.id]
    schedule = settings.CELERY_BEAT_SCHEDULE["purge-responses"]
    assert schedule["task"] == "routing.tasks.responses_purge"


def test_input_items_follow_the_conversation_they_were_sent_in(gateway, upstream, tenant):
    _relay(upstream)
    client = gateway.client(tenant.key)
    first = client.responses.create(model=MODEL, input="one")
    second = client.responses.create(model=MODEL, input="two", previous_response_id=first.id)
    own = client.responses.input_items.list(second.id)
    assert [json.dumps(i.model_dump()) for i in own.data] and len(own.data) == 1
    assert own.data[0].content[0].text == "two"
    stored = StoredResponse.objects.get(pk=second.id)
    assert stored.previous_response_id == first.id
    assert len(stored.context_items) == 3  # one, its answer, two


def test_a_failing_native_route_falls_back_to_a_translated_one_which_names_what_it_dropped(
    gateway, upstream, tenant
):
    from tests.mocks.anthropic_upstream import MockAnthropic

    claude = MockAnthropic().start()
    try:
        claude.call_tools = False
        apply(
            [
                {
                    "name": "official",
                    "provider": "openai",
                    "base_url": upstream.base_url,
                    "responses": True,
                },
                {"name": "claude-b", "provider": "anthropic", "base_url": claude.base_url},
            ],
            [
                {
                    "name": MODEL,
                    "routes": [
                        {
                            "upstream": "official",
                            "model": "fault-503",
                            "price": {"input": "1", "output": "4"},
                        },
                        {
                            "upstream": "claude-b",
                            "model": "claude-1",
                            "price": {"input": "3", "output": "15"},
                        },
                    ],
                }
            ],
        )
        raw = gateway.client(tenant.key).responses.with_raw_response.create(
            model=MODEL, input="News?", tools=[WEB, FN]
        )
        response = raw.parse()
        assert response.output_text.startswith("Hello from the Anthropic mock")
        assert raw.headers["x-tokenforge-fallback"] == "true"
        assert raw.headers["x-tokenforge-route"] == "claude-b/claude-1"
        assert raw.headers["x-tokenforge-dropped"] == "web_search"
        assert [r["path"] for r in upstream.requests] == ["/v1/responses"] * 2  # try + retry
        record = UsageRecord.objects.get(request_id=raw.headers["x-request-id"])
        assert record.fallback and record.dropped == ["web_search"]
        assert [a["status"] for a in record.attempts] == ["503", "503", "ok"]
        assert record.cost == (Decimal(21) * 3 + Decimal(11) * 15) / 1_000_000
    finally:
        claude.stop()
