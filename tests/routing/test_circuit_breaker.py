"""Issue 19 (medium): a short upstream blip no longer locks customers out for the whole
cooldown. When no closed route is left, one request at a time probes the route whose
cooldown ends first (half-open); a success closes it at once. Real gateway and mock."""

from __future__ import annotations

import threading
import time

import httpx
import openai
import pytest

from ledger.models import UsageRecord
from tests.routing.conftest import apply, make_tenant

pytestmark = pytest.mark.django_db(transaction=True)

MSG = [{"role": "user", "content": "hi"}]


def _rmb_relay(base_url: str) -> None:
    """The issue's case: a key limited to the RMB wallet, whose only route is one relay."""
    apply(
        [
            {"name": "relay-rmb", "base_url": base_url, "wallet": "RMB"},
            {"name": "official", "base_url": base_url, "wallet": "CREDIT"},
        ],
        [
            {
                "name": "m",
                "routes": [
                    {
                        "upstream": "relay-rmb",
                        "model": "gpt-4o-mini",
                        "price": {"input": "1", "output": "1"},
                    },
                    {
                        "upstream": "official",
                        "model": "gpt-4o-mini",
                        "price": {"input": "1", "output": "1"},
                    },
                ],
            }
        ],
    )


def _blip(client, upstream) -> None:
    upstream.script = ["500"] * 4  # two requests, two tries each: the third failure opens it
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=MSG)


def test_after_a_blip_the_next_request_probes_half_open_and_its_success_closes_the_breaker(
    gateway, upstream
):
    _rmb_relay(upstream.base_url)
    t = make_tenant(allowed_wallets=["RMB"])
    client = gateway.client(t.key)
    _blip(client, upstream)
    # The relay is back. Before: 503 "retry shortly" for the whole 30 s cooldown.
    started = time.monotonic()
    for _ in range(5):
        raw = client.chat.completions.with_raw_response.create(model="m", messages=MSG)
        assert raw.headers["x-tokenforge-route"] == "relay-rmb/gpt-4o-mini"
    assert time.monotonic() - started < 10
    records = UsageRecord.objects.filter(org=t.org, status="settled")
    assert records.count() == 5


def test_only_one_request_at_a_time_probes_an_open_route(gateway, upstream):
    _rmb_relay(upstream.base_url)
    t = make_tenant(allowed_wallets=["RMB"])
    client = gateway.client(t.key)
    _blip(client, upstream)
    upstream.hang_seconds = 2.0
    upstream.script = ["hang"]  # the probe takes 2 s, then succeeds
    results: dict[str, int] = {}

    def probe():
        response = httpx.post(
            gateway.url + "/v1/chat/completions",
            json={"model": "m", "messages": MSG},
            headers={"authorization": f"Bearer {t.key}"},
            timeout=30,
        )
        results["probe"] = response.status_code

    thread = threading.Thread(target=probe)
    thread.start()
    time.sleep(0.7)
    before = len(upstream.requests)
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model="m", messages=MSG)
    assert err.value.status_code == 503
    assert err.value.body["code"] == "upstreams_cooling_down"
    assert 1 <= int(err.value.response.headers["retry-after"]) <= 30
    assert len(upstream.requests) == before  # refused without reaching the relay
    thread.join(timeout=30)
    assert results["probe"] == 200
    raw = client.chat.completions.with_raw_response.create(model="m", messages=MSG)
    assert raw.headers["x-tokenforge-route"] == "relay-rmb/gpt-4o-mini"


def test_a_failed_probe_reopens_the_breaker_and_other_routes_keep_serving(gateway, upstream):
    apply(
        [
            {"name": "relay-rmb", "base_url": upstream.base_url, "wallet": "RMB"},
            {"name": "official", "base_url": upstream.base_url, "wallet": "CREDIT"},
        ],
        [
            {
                "name": "m",
                "routes": [
                    {
                        "upstream": "relay-rmb",
                        "model": "fault-500",
                        "price": {"input": "1", "output": "1"},
                    },
                    {
                        "upstream": "official",
                        "model": "gpt-4o-mini",
                        "price": {"input": "1", "output": "1"},
                    },
                ],
            }
        ],
    )
    client = gateway.client(make_tenant().key)
    for _ in range(2):  # the relay fails twice per request; the third failure opens it
        raw = client.chat.completions.with_raw_response.create(model="m", messages=MSG)
        assert raw.headers["x-tokenforge-route"] == "official/gpt-4o-mini"
    relay_calls = sum(r["body"].get("model") == "fault-500" for r in upstream.requests)
    raw = client.chat.completions.with_raw_response.create(model="m", messages=MSG)
    assert raw.headers["x-tokenforge-route"] == "official/gpt-4o-mini"
    # A closed route is left: the open relay is skipped, not probed.
    assert sum(r["body"].get("model") == "fault-500" for r in upstream.requests) == relay_calls
    # A key that may only use the relay: one probe (a single try), it fails and re-opens the
    # breaker; the next request, within the probe interval, is refused without a call.
    rmb_only = gateway.client(make_tenant(allowed_wallets=["RMB"]).key)
    with pytest.raises(openai.InternalServerError):
        rmb_only.chat.completions.create(model="m", messages=MSG)
    assert sum(r["body"].get("model") == "fault-500" for r in upstream.requests) == relay_calls + 1
    with pytest.raises(openai.APIStatusError) as err:
        rmb_only.chat.completions.create(model="m", messages=MSG)
    assert err.value.status_code == 503
    assert sum(r["body"].get("model") == "fault-500" for r in upstream.requests) == relay_calls + 1
