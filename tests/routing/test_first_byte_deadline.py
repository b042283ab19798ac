"""Issue 19 (low): ROUTING_FIRST_BYTE_DEADLINE_SECONDS bounds every attempt of one request
together; past it the client gets 504 (OpenAI-style) and the hold is released."""

from __future__ import annotations

import time

import httpx
import pytest

from ledger.models import Hold, HoldStatus, UsageRecord
from tests.reliability.conftest import start_server
from tests.routing.conftest import apply, make_tenant, wait_no_pending_holds

pytestmark = pytest.mark.django_db(transaction=True)

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture
def deadline_gateway():
    server = start_server({"ROUTING_FIRST_BYTE_DEADLINE_SECONDS": "2"})
    yield server
    server.stop()


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_upstreams_that_never_answer_get_a_504_at_the_deadline(
    deadline_gateway, upstream, stream, path
):
    # Two routes, 5 s timeout each, one retry: 20 s of waiting without the deadline.
    upstream.hang_seconds = 30
    apply(
        [
            {"name": "relay-a", "base_url": upstream.base_url, "timeout": 5},
            {"name": "relay-b", "base_url": upstream.base_url, "timeout": 5},
        ],
        [
            {
                "name": "m",
                "routes": [
                    {
                        "upstream": "relay-a",
                        "model": "fault-hang",
                        "price": {"input": "1", "output": "1"},
                    },
                    {
                        "upstream": "relay-b",
                        "model": "fault-hang",
                        "price": {"input": "1", "output": "1"},
                    },
                ],
            }
        ],
    )
    t = make_tenant()
    started = time.monotonic()
    response = httpx.post(
        deadline_gateway.url + path,
        json={"model": "m", "messages": MSG, "max_tokens": 5, "stream": stream},
        headers={"authorization": f"Bearer {t.key}"},
        timeout=30,
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 504, response.text
    assert 1.8 <= elapsed < 6
    error = response.json()["error"]
    assert "deadline" in error["message"]
    if path == "/v1/chat/completions":
        assert error["code"] == "deadline_exceeded"
    else:
        assert error["type"] == "timeout_error"
    wait_no_pending_holds()
    hold = Hold.objects.get(org=t.org)
    assert hold.status == HoldStatus.VOIDED
    assert UsageRecord.objects.get(org=t.org).status == "failed"
