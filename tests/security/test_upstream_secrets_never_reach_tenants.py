"""Issue 19 (high + medium): upstreams that echo their credentials in error bodies never hand
them to a tenant, or to anything stored or logged.

A real uvicorn (the gateway) in front of an OpenAI-format and an Anthropic mock whose error
texts echo the key and `Authorization` header they received. Every answer on both surfaces,
streamed and not, every /v1/generation record, the upstream's disable reason, its audit event,
the usage records and the server's log (at DEBUG) are searched for the keys.
"""

from __future__ import annotations

import secrets

import httpx
import orjson
import pytest

from accounts.models import AuditEvent
from ledger.models import UsageRecord
from routing.models import Upstream
from routing.services import routing_apply
from tests.mocks.anthropic_upstream import MockAnthropic
from tests.mocks.openai_upstream import MockOpenAI
from tests.reliability.conftest import start_server
from tests.routing.conftest import make_tenant, wait_no_pending_holds

pytestmark = pytest.mark.django_db(transaction=True)

RELAY_SECRET = "sk-relay-" + secrets.token_hex(16)
CLAUDE_SECRET = "sk-ant-api03-" + secrets.token_hex(16)
SPARE_SECRET = "sk-spare-" + secrets.token_hex(16)
MSG = [{"role": "user", "content": "hi"}]


def _price():
    return {"input": "1", "output": "1"}


def _routing(openai_url: str, anthropic_url: str) -> None:
    routes = {
        "gpt-400": ("relay-a", "fault-400"),
        "gpt-500": ("relay-a", "fault-500"),
        "gpt-stream-error": ("relay-a", "fault-stream_error"),
        "gpt-ok": ("relay-a", "gpt-4o-mini"),
        "claude-400": ("claude", "fault-400"),
        "claude-500": ("claude", "fault-500"),
    }
    models = [
        {"name": name, "routes": [{"upstream": up, "model": model, "price": _price()}]}
        for name, (up, model) in routes.items()
    ]
    # A second route on gpt-ok, so the request that gets relay-a disabled still succeeds.
    models[3]["routes"].append({"upstream": "spare", "model": "gpt-4o-mini", "price": _price()})
    routing_apply(
        data={
            "upstreams": [
                {
                    "name": "relay-a",
                    "provider": "openai-compatible",
                    "base_url": openai_url,
                    "api_key_env": "RELAY",
                    "wallet": "CREDIT",
                    "timeout": 5,
                },
                {
                    "name": "spare",
                    "provider": "openai-compatible",
                    "base_url": openai_url,
                    "api_key_env": "SPARE",
                    "wallet": "CREDIT",
                    "timeout": 5,
                },
                {
                    "name": "claude",
                    "provider": "anthropic",
                    "base_url": anthropic_url,
                    "api_key_env": "CLAUDE",
                    "wallet": "CREDIT",
                    "timeout": 5,
                },
            ],
            "models": models,
        },
        env={"RELAY": RELAY_SECRET, "CLAUDE": CLAUDE_SECRET, "SPARE": SPARE_SECRET},
    )


def _assert_clean(text: str, where: str) -> None:
    for name, secret in (("relay", RELAY_SECRET), ("claude", CLAUDE_SECRET)):
        assert secret not in text, f"the {name} upstream key appears in {where}"
        assert secret[-16:] not in text, f"the tail of the {name} key appears in {where}"


@pytest.fixture
def mocks():
    openai_mock, claude_mock = MockOpenAI().start(), MockAnthropic().start()
    openai_mock.echo_credentials = claude_mock.echo_credentials = True
    yield openai_mock, claude_mock
    openai_mock.stop()
    claude_mock.stop()


def test_echoed_upstream_keys_never_reach_answers_records_audit_events_or_logs(mocks, tmp_path):
    openai_mock, claude_mock = mocks
    _routing(openai_mock.base_url, claude_mock.base_url)
    tenant = make_tenant()
    # Breakers stay closed here (tests/routing/test_circuit_breaker.py covers them).
    env = {"LOG_LEVEL": "DEBUG", "ROUTING_COOLDOWN_FAILURES": "1000"}
    server = start_server(env, log_path=tmp_path / "server.log")
    answers: list[str] = []
    request_ids: list[str] = []
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            auth = {"authorization": f"Bearer {tenant.key}"}

            def chat(model: str, stream: bool) -> httpx.Response:
                body = {"model": model, "messages": MSG, "stream": stream}
                return client.post("/v1/chat/completions", json=body, headers=auth)

            def messages(model: str, stream: bool) -> httpx.Response:
                body = {"model": model, "messages": MSG, "max_tokens": 5, "stream": stream}
                return client.post("/v1/messages", json=body, headers=auth)

            def keep(response: httpx.Response) -> httpx.Response:
                answers.append(response.text + repr(dict(response.headers)))
                request_ids.append(response.headers["x-request-id"])
                return response

            for stream in (False, True):
                # A non-retryable refusal: the client gets the upstream's status and type,
                # with its message redacted.
                response = keep(chat("gpt-400", stream))
                assert response.status_code == 400
                error = response.json()["error"]
                assert error["type"] == "invalid_request_error"
                assert "mock 400" in error["message"] and "[redacted]" in error["message"]
                for model in ("gpt-400", "claude-400"):
                    response = keep(messages(model, stream))
                    assert response.status_code == 400
                    assert response.json()["error"]["type"] == "invalid_request_error"
                    assert "[redacted]" in response.json()["error"]["message"]
                # Every route failed: "last error" names the status, type and redacted text.
                response = keep(chat("gpt-500", stream))
                assert response.status_code == 502
                message = response.json()["error"]["message"]
                assert message.startswith("Every route failed; last error: upstream answered 500")
                assert "[redacted]" in message
                for model in ("gpt-500", "claude-500"):
                    response = keep(messages(model, stream))
                    assert response.status_code == 502, (model, stream, response.text)
                    assert "Every route failed" in response.json()["error"]["message"]
            # An error in the middle of a stream, on both surfaces.
            response = keep(chat("gpt-stream-error", True))
            assert response.status_code == 200 and "The upstream stream broke" in response.text
            response = keep(messages("gpt-stream-error", True))
            assert response.status_code == 200 and "event: error" in response.text
            # relay-a's key is revoked: its 401 echoes the key; the gateway's probe confirms
            # it, the upstream is disabled, and the request falls back to the spare route.
            openai_mock.valid_keys = {SPARE_SECRET}
            response = keep(chat("gpt-ok", False))
            assert response.status_code == 200
            assert response.headers["x-tokenforge-route"] == "spare/gpt-4o-mini"
            wait_no_pending_holds()
            for request_id in request_ids:
                generation = client.get("/v1/generation", params={"id": request_id}, headers=auth)
                assert generation.status_code == 200, request_id
                for attempt in generation.json()["attempts"]:
                    if attempt["status"] == "400":  # the upstream's status and type, redacted text
                        assert attempt["type"] == "invalid_request_error"
                        assert "[redacted]" in attempt["error"]
                answers.append(generation.text)
    finally:
        server.stop()

    relay = Upstream.objects.get(name="relay-a")
    assert not relay.enabled
    assert "401" in relay.disabled_reason and "[redacted]" in relay.disabled_reason
    _assert_clean(relay.disabled_reason, "the disable reason")
    events = AuditEvent.objects.filter(action="upstream.disable")
    assert events.exists()
    _assert_clean(orjson.dumps(list(events.values("changes"))).decode(), "an audit event")
    records = list(UsageRecord.objects.filter(org=tenant.org).values("error", "attempts"))
    assert len(records) == len(request_ids)
    assert any(r["error"] for r in records)
    _assert_clean(orjson.dumps(records).decode(), "a usage record")
    for answer in answers:
        _assert_clean(answer, "an answer")
    log = server.log()
    assert "mock 500" in log or "request_finished" in log  # the log was captured
    _assert_clean(log, "the server log")
    # The mocks really did echo the keys (or this test would prove nothing).
    assert any(
        r["headers"].get("authorization") == f"Bearer {RELAY_SECRET}" for r in openai_mock.requests
    )
    assert any(r["headers"].get("x-api-key") == CLAUDE_SECRET for r in claude_mock.requests)
