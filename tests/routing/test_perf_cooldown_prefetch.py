"""The key's revocation version and the model's cooldown flags are read in one Redis round
trip (routing.auth + routing.cooldown): cooldowns and revocation must hold exactly as before."""

from __future__ import annotations

import asyncio

import pytest

from routing import cooldown
from routing.models import Route
from routing.redis import sync_redis
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
    redis = sync_redis()
    redis.set(f"{cooldown.PREFIX}on:{route_id}", "1", ex=30)
    try:
        for _ in range(3):
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=MSG
            )
            assert raw.headers["x-tokenforge-route"] == "official/gpt-4o-mini"
    finally:
        redis.delete(f"{cooldown.PREFIX}on:{route_id}")
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
    assert raw.headers["x-tokenforge-route"] == "relay-a/gpt-4o-mini"


def test_prefetched_cooldown_flags_answer_once_and_only_for_the_routes_they_cover():
    cooldown.cooldown_reset_local()
    redis = sync_redis()
    redis.set(f"{cooldown.PREFIX}on:9002", "1", ex=30)
    try:

        async def run():
            cooldown.prefetch_store([9001], [b"1"])  # says 9001 cools: only a prefetch says so
            partial = await cooldown.cooled_down([9001, 9002])  # 9002 not covered: asks Redis
            cooldown.prefetch_store([9001, 9002], [b"1", None])
            covered = await cooldown.cooled_down([9001, 9002])
            again = await cooldown.cooled_down([9001, 9002])  # consumed: asks Redis
            return partial, covered, again

        assert asyncio.run(run()) == ({9002}, {9001}, {9002})
    finally:
        redis.delete(f"{cooldown.PREFIX}on:9002")
