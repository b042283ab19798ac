"""Nothing secret in logs or error messages: requests run with known API keys, upstream
secrets and Stripe secrets, then every captured log (the server's stderr at DEBUG, caplog)
and every response body and header is searched for them."""

from __future__ import annotations

import secrets

import httpx
import pytest
import stripe
from django.conf import settings as django_settings
from django.urls import reverse

from accounts.models import Role
from routing.services import routing_apply
from tests.factories import MembershipFactory
from tests.mocks.openai_upstream import MockOpenAI
from tests.mocks.stripe_api import StripeApiServer, stripe_signature
from tests.reliability.conftest import start_server
from tests.routing.conftest import make_tenant

UPSTREAM_SECRET = "sk-upstream-" + secrets.token_hex(16)
STRIPE_SECRET = "sk_test_" + secrets.token_hex(16)
WEBHOOK_SECRET = "whsec_" + secrets.token_hex(16)
WRONG_KEY = "tf-" + secrets.token_hex(24)  # well-formed, unknown


def _assert_absent(haystack: str, needles: dict[str, str]) -> None:
    for name, secret in needles.items():
        assert secret not in haystack, f"the {name} appears in captured output"
        assert secret[-16:] not in haystack, f"the tail of the {name} appears in captured output"


@pytest.mark.django_db(transaction=True)
def test_gateway_logs_and_answers_never_contain_keys_or_upstream_secrets(tmp_path):
    upstream = MockOpenAI().start()
    try:
        routing_apply(
            data={
                "upstreams": [
                    {
                        "name": "relay-a",
                        "provider": "openai-compatible",
                        "base_url": upstream.base_url,
                        "api_key_env": "RELAY_SECRET",
                        "wallet": "CREDIT",
                        "timeout": 5,
                    }
                ],
                "models": [
                    {
                        "name": "gpt-4o-mini",
                        "routes": [
                            {
                                "upstream": "relay-a",
                                "model": "m",
                                "price": {"input": "1", "output": "1"},
                            }
                        ],
                    }
                ],
            },
            env={"RELAY_SECRET": UPSTREAM_SECRET},
        )
        t = make_tenant()
        server = start_server(
            {
                "LOG_LEVEL": "DEBUG",
                "STRIPE_SECRET_KEY": STRIPE_SECRET,
                "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            },
            log_path=tmp_path / "server.log",
        )
        answers: list[str] = []
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:

                def call(method: str, path: str, key: str | None = t.key, headers=None, **kw):
                    headers = {**(headers or {})}
                    if key:
                        headers["authorization"] = f"Bearer {key}"
                    response = client.request(method, path, headers=headers, **kw)
                    answers.append(f"{response.status_code} {response.headers} {response.text}")
                    return response

                chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
                first = call("POST", "/v1/chat/completions", json=chat)
                assert first.status_code == 200
                call("POST", "/v1/chat/completions", json={**chat, "stream": True})
                call("GET", f"/v1/generation?id={first.headers['x-request-id']}")
                call("GET", "/v1/key")
                call("POST", "/v1/chat/completions", key=WRONG_KEY, json=chat)
                call("POST", "/v1/chat/completions", json={**chat, "model": "nope"})
                call("POST", "/v1/chat/completions", content=b"{broken")
                call(
                    "POST",
                    "/webhooks/stripe/",
                    key=None,
                    content=b"{}",
                    headers={"Stripe-Signature": "t=1,v1=00"},
                )
                upstream.mode = "500"
                call("POST", "/v1/chat/completions", json=chat)
                upstream.mode = "401"  # the upstream refuses its key: disabled, reported to ops
                call("POST", "/v1/chat/completions", json=chat)
        finally:
            server.stop()
    finally:
        upstream.stop()
    # Positive control: the upstream did get its secret, so it passed through the process.
    assert upstream.requests[0]["headers"]["authorization"] == f"Bearer {UPSTREAM_SECRET}"
    log = server.log()
    assert log.strip(), "the server wrote no log at DEBUG"
    assert "Traceback" not in log, log[-3000:]
    assert "database unavailable" not in log
    needles = {
        "tenant API key": t.key,
        "unknown API key": WRONG_KEY,
        "upstream secret": UPSTREAM_SECRET,
        "Stripe secret key": STRIPE_SECRET,
        "Stripe webhook secret": WEBHOOK_SECRET,
        "field encryption key": django_settings.FIELD_ENCRYPTION_KEY,
        "Django secret key": django_settings.SECRET_KEY,
    }
    _assert_absent(log, needles)
    _assert_absent("\n".join(answers), needles)


@pytest.mark.django_db
def test_stripe_calls_and_webhooks_never_log_or_show_the_stripe_secrets(
    client, org, settings, monkeypatch, caplog
):
    settings.STRIPE_SECRET_KEY = STRIPE_SECRET
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    caplog.set_level("DEBUG")
    owner = MembershipFactory(org=org, role=Role.OWNER).user
    client.force_login(owner)
    bodies = []
    with StripeApiServer() as server:
        monkeypatch.setattr(stripe, "api_base", server.url)
        response = client.post(reverse("ledger:topup_checkout"), {"amount": "12.50"})
        assert response.status_code == 302
        assert server.requests[0]["auth"] == f"Bearer {STRIPE_SECRET}"  # it was used
    monkeypatch.setattr(stripe, "api_base", "http://127.0.0.1:1")  # Stripe unreachable
    response = client.post(reverse("ledger:topup_checkout"), {"amount": "12.50"})
    bodies.append(response.content.decode())
    for signature in ("t=1,v1=00", stripe_signature(payload=b"{}", secret="whsec_wrong"), ""):
        response = client.post(
            reverse("stripe_webhook"),
            data=b"{}",
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=signature,
        )
        assert response.status_code == 400
        bodies.append(response.content.decode())
    needles = {"Stripe secret key": STRIPE_SECRET, "Stripe webhook secret": WEBHOOK_SECRET}
    _assert_absent(caplog.text, needles)
    _assert_absent("\n".join(bodies), needles)
