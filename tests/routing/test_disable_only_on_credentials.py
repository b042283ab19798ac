"""Issue 19 (medium): one tenant's request cannot switch off a shared upstream.

Only an answer about the upstream's own credentials or quota disables it, and only once the
gateway's own probe confirms it; any other refusal (a 403 about the request's content or
policy, or a 401 the probe contradicts) cools the route down for that organization only.
Real gateway (uvicorn) and two mock upstreams.
"""

from __future__ import annotations

import httpx
import orjson
import pytest

from ledger.models import UsageRecord
from routing.models import Upstream
from routing.providers.anthropic import error_from_response as anthropic_error
from routing.providers.gemini import error_from_response as gemini_error
from routing.providers.openai import error_from_response as openai_error
from tests.routing.conftest import apply, make_tenant

pytestmark = pytest.mark.django_db(transaction=True)

MSG = [{"role": "user", "content": "hi"}]


def _two_upstreams(first_url: str, second_url: str, *, first_model: str = "gpt-4o-mini"):
    apply(
        [
            {"name": "relay-a", "base_url": first_url},
            {"name": "official", "base_url": second_url},
        ],
        [
            {
                "name": "gpt-4o-mini",
                "routes": [
                    {
                        "upstream": "relay-a",
                        "model": first_model,
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


def test_a_403_refusal_cools_the_route_down_for_that_organization_only(
    gateway, upstream, upstream_b
):
    _two_upstreams(upstream.base_url, upstream_b.base_url)
    a, b = make_tenant(), make_tenant()
    upstream.echo_credentials = True
    upstream.script = ["403", "403", "403"]  # relay-a refuses tenant A's next three requests
    client_a = gateway.client(a.key)
    for _ in range(3):
        raw = client_a.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
        assert raw.headers["x-tokenforge-route"] == "official/gpt-4o-mini"
        record = UsageRecord.objects.get(request_id=raw.headers["x-request-id"])
        assert [x["status"] for x in record.attempts] == ["403", "ok"]  # not retried
    relay = Upstream.objects.get(name="relay-a")
    assert relay.enabled and not relay.disabled_reason
    # Tenant A's breaker on relay-a is open: straight to the next route.
    before = len(upstream.requests)
    raw = client_a.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
    assert raw.headers["x-tokenforge-route"] == "official/gpt-4o-mini"
    assert len(upstream.requests) == before
    # Tenant B never noticed: relay-a still serves it.
    raw = gateway.client(b.key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSG
    )
    assert raw.headers["x-tokenforge-route"] == "relay-a/gpt-4o-mini"


def test_a_refusal_on_the_only_route_reaches_the_client_with_the_upstreams_status(
    gateway, upstream
):
    apply(
        [{"name": "relay-a", "base_url": upstream.base_url}],
        [
            {
                "name": "m",
                "routes": [
                    {
                        "upstream": "relay-a",
                        "model": "fault-403",
                        "price": {"input": "1", "output": "1"},
                    }
                ],
            }
        ],
    )
    t = make_tenant()
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "m", "messages": MSG},
        headers={"authorization": f"Bearer {t.key}"},
        timeout=30,
    )
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert Upstream.objects.get(name="relay-a").enabled


def test_a_401_the_gateways_probe_contradicts_does_not_disable_the_upstream(
    gateway, upstream, upstream_b
):
    # relay-a answers 401 for this model only; its credentials work (GET /models is 200).
    _two_upstreams(upstream.base_url, upstream_b.base_url, first_model="fault-401")
    t = make_tenant()
    raw = gateway.client(t.key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSG
    )
    assert raw.headers["x-tokenforge-route"] == "official/gpt-4o-mini"
    relay = Upstream.objects.get(name="relay-a")
    assert relay.enabled
    assert any(r["path"].endswith("/models") for r in upstream.requests)  # the probe ran


@pytest.mark.parametrize(
    ("status", "body", "disable", "tenant"),
    [
        (401, {"error": {"message": "Incorrect API key", "code": "invalid_api_key"}}, True, False),
        (429, {"error": {"message": "quota", "type": "insufficient_quota"}}, True, False),
        (
            403,
            {"error": {"message": "flagged by moderation", "type": "invalid_request_error"}},
            False,
            True,
        ),
        (403, {"error": {"message": "unsupported_country_region_territory"}}, False, True),
        (400, {"error": {"message": "bad", "type": "invalid_request_error"}}, False, False),
    ],
)
def test_openai_answers_map_to_disable_only_for_credentials(status, body, disable, tenant):
    err = openai_error(status, orjson.dumps(body), httpx.Response(status))
    assert (err.disable, err.tenant) == (disable, tenant)


@pytest.mark.parametrize(
    ("status", "kind", "message", "disable"),
    [
        (401, "authentication_error", "invalid x-api-key", True),
        (403, "permission_error", "Your API key does not have permission to use this model", True),
        (403, "permission_error", "Your request was flagged by our content filter", False),
        (400, "invalid_request_error", "Your credit balance is too low", True),
    ],
)
def test_anthropic_permission_errors_disable_only_when_about_the_key(
    status, kind, message, disable
):
    body = {"type": "error", "error": {"type": kind, "message": message}}
    err = anthropic_error(status, orjson.dumps(body), httpx.Response(status))
    assert err.disable == disable
    assert err.tenant == (status == 403 and not disable)


def test_gemini_permission_denied_about_the_request_is_not_a_key_failure():
    body = {"error": {"code": 403, "status": "PERMISSION_DENIED", "message": "Blocked by policy"}}
    err = gemini_error(403, orjson.dumps(body), httpx.Response(403))
    assert not err.disable and err.tenant
    body["error"]["message"] = "API key not valid. Please pass a valid API key."
    assert gemini_error(400, orjson.dumps(body), httpx.Response(400)).disable
