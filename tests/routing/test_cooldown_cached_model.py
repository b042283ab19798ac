"""A route cooling down is skipped for the next requests of a model already cached in the
worker, and used again once its cooldown ends (the hot path reads the breakers pushed to the
process, at most `STALENESS_BOUND_SECONDS` old)."""

from __future__ import annotations

import time

import pytest

from routing import cooldown
from routing.models import Route
from routing.shared_state import STALENESS_BOUND_SECONDS as cooldown_bound
from tests.routing.conftest import apply

pytestmark = pytest.mark.django_db(transaction=True)

MSG = [{"role": "user", "content": "hi"}]


def _two_routes(url: str) -> None:
    apply(
        [{"name": "relay-a", "base_url": url}, {"name": "official", "base_url": url}],
        [
            {
                "name": "gpt-4o-mini",
                "routes": [
                    {
                        "upstream": "relay-a",
                        "model": "gpt-4o-mini",
                        "price": {"input": "1", "output": "4"},
                    },
                    {
                        "upstream": "official",
                        "model": "gpt-4o-mini",
                        "price": {"input": "1", "output": "4"},
                    },
                ],
            }
        ],
    )


def test_a_cooling_route_is_skipped_when_its_flag_comes_with_the_key_check(
    gateway, upstream, tenant
):
    _two_routes(upstream.base_url)
    client = gateway.client(tenant.key)
    first = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
    assert first.headers["x-tokenforge-route"] == "relay-a/gpt-4o-mini"  # model now cached
    route_id = Route.objects.get(upstream__name="relay-a").pk
    cooldown.breaker_open_now(route_id, seconds=30)  # as failures in any process would
    time.sleep(cooldown_bound)
    try:
        for _ in range(3):
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=MSG
            )
            assert raw.headers["x-tokenforge-route"] == "official/gpt-4o-mini"
    finally:
        cooldown.breaker_close_now(route_id)
    time.sleep(cooldown_bound)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
    assert raw.headers["x-tokenforge-route"] == "relay-a/gpt-4o-mini"
