from __future__ import annotations

from datetime import timedelta

import httpx
import openai
import pytest
from django.utils import timezone

from ledger.models import UsageRecord
from projects.services import key_revoke
from tests.routing.conftest import make_tenant, one_route

pytestmark = pytest.mark.django_db(transaction=True)

MSG = [{"role": "user", "content": "hi"}]


def _post(gateway, key, body, **kwargs):
    headers = {"authorization": f"Bearer {key}"} if key else {}
    headers.update(kwargs.pop("headers", {}))
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        headers=headers,
        timeout=10,
        **kwargs,
        **({"json": body} if not isinstance(body, bytes) else {"content": body}),
    )


def _error(response) -> dict:
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert response.headers["x-request-id"].startswith("req_")
    return error


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        ({"messages": MSG}, "model"),
        ({"model": 5, "messages": MSG}, "model"),
        ({"model": "gpt-4o-mini"}, "messages"),
        ({"model": "gpt-4o-mini", "messages": []}, "messages"),
        ({"model": "gpt-4o-mini", "messages": "hi"}, "messages"),
        ({"model": "gpt-4o-mini", "messages": [{"content": "x"}]}, "messages[0]"),
        ({"model": "gpt-4o-mini", "messages": MSG, "max_tokens": 0}, "max_tokens"),
        ({"model": "gpt-4o-mini", "messages": MSG, "max_tokens": "10"}, "max_tokens"),
        ({"model": "gpt-4o-mini", "messages": MSG, "max_tokens": 10**9}, "max_tokens"),
        ({"model": "gpt-4o-mini", "messages": MSG, "stream": "yes"}, "stream"),
        ({"model": "gpt-4o-mini", "messages": MSG, "temperature": "hot"}, "temperature"),
    ],
)
def test_invalid_bodies_get_a_clear_400(gateway, upstream, tenant, body, param):
    one_route(upstream.base_url)
    response = _post(gateway, tenant.key, body)
    assert response.status_code == 400
    error = _error(response)
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert upstream.requests == []


def test_bad_embeddings_input_gets_400(gateway, tenant):
    response = httpx.post(
        gateway.url + "/v1/embeddings",
        headers={"authorization": f"Bearer {tenant.key}"},
        json={"model": "x", "input": []},
    )
    assert response.status_code == 400 and _error(response)["param"] == "input"


def test_a_body_over_the_limit_gets_413(gateway, tenant):
    response = _post(
        gateway, tenant.key, {"model": "m", "messages": [{"role": "user", "content": "x" * 70000}]}
    )
    assert response.status_code == 413
    assert _error(response)["code"] == "request_too_large"


def test_missing_unknown_revoked_and_expired_keys_get_401(gateway, upstream, tenant):
    one_route(upstream.base_url)
    assert _post(gateway, None, {"model": "gpt-4o-mini", "messages": MSG}).status_code == 401
    response = _post(gateway, "tf-" + "x" * 48, {"model": "gpt-4o-mini", "messages": MSG})
    assert response.status_code == 401 and _error(response)["code"] == "invalid_api_key"
    # x-api-key works too, and the key is then cached...
    ok = httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"x-api-key": tenant.key},
        json={"model": "gpt-4o-mini", "messages": MSG},
    )
    assert ok.status_code == 200
    # ...yet revocation takes effect at once
    key_revoke(api_key=tenant.api_key)
    assert _post(gateway, tenant.key, {"model": "gpt-4o-mini", "messages": MSG}).status_code == 401
    expired = make_tenant(expires_at=timezone.now() - timedelta(seconds=1))
    response = _post(gateway, expired.key, {"model": "gpt-4o-mini", "messages": MSG})
    assert response.status_code == 401 and _error(response)["code"] == "expired_api_key"


def test_the_openai_sdk_sees_authentication_errors(gateway):
    with pytest.raises(openai.AuthenticationError):
        gateway.client("tf-nope").chat.completions.create(model="gpt-4o-mini", messages=MSG)


def test_a_model_outside_the_key_allow_list_gets_403_and_an_unknown_model_404(gateway, upstream):
    one_route(upstream.base_url)
    t = make_tenant(allowed_models=["other"])
    response = _post(gateway, t.key, {"model": "gpt-4o-mini", "messages": MSG})
    assert response.status_code == 403 and _error(response)["code"] == "model_not_allowed"
    free = make_tenant()
    with pytest.raises(openai.NotFoundError) as err:
        gateway.client(free.key).chat.completions.create(model="no-such-model", messages=MSG)
    assert err.value.body["code"] == "model_not_found"


def test_a_request_from_outside_the_ip_allow_list_gets_403(gateway, upstream):
    one_route(upstream.base_url)
    outside = make_tenant(ip_allowlist=["10.0.0.0/8"])
    response = _post(gateway, outside.key, {"model": "gpt-4o-mini", "messages": MSG})
    assert response.status_code == 403 and _error(response)["code"] == "ip_not_allowed"
    inside = make_tenant(ip_allowlist=["127.0.0.0/8", "::1/128"])
    assert _post(gateway, inside.key, {"model": "gpt-4o-mini", "messages": MSG}).status_code == 200


def test_unknown_v1_paths_and_wrong_methods_get_openai_shaped_errors(gateway, tenant):
    response = httpx.get(
        gateway.url + "/v1/nope", headers={"authorization": f"Bearer {tenant.key}"}
    )
    assert response.status_code == 404 and _error(response)["code"] == "unknown_url"
    response = httpx.get(
        gateway.url + "/v1/chat/completions", headers={"authorization": f"Bearer {tenant.key}"}
    )
    assert response.status_code == 405 and _error(response)


def test_rpm_limit_answers_429_with_retry_after(gateway, upstream):
    one_route(upstream.base_url)
    t = make_tenant(rpm_limit=2)
    client = gateway.client(t.key)
    client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    response = _post(gateway, t.key, {"model": "gpt-4o-mini", "messages": MSG})
    assert response.status_code == 429
    assert _error(response)["code"] == "rate_limit_rpm"
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert len(upstream.requests) == 2
    assert UsageRecord.objects.filter(org=t.org, status="settled").count() == 2
    assert UsageRecord.objects.filter(org=t.org, status="failed", cost=0).count() == 1


def test_tpm_limit_answers_429(gateway, upstream):
    one_route(upstream.base_url)
    t = make_tenant(tpm_limit=25)
    client = gateway.client(t.key)
    client.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # 21 tokens used
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert err.value.body["code"] == "rate_limit_tpm"
    assert err.value.response.headers["retry-after"]


def test_the_concurrent_stream_limit_answers_429(gateway, upstream):
    one_route(upstream.base_url)
    upstream.mode = "slow"
    t = make_tenant(max_concurrent_streams=1)
    client = gateway.client(t.key)
    first = client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
    next(iter(first))
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
    assert err.value.body["code"] == "too_many_streams"
    first.close()
