"""The engine called in-process, as the AI Researcher does from Celery (no HTTP)."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import override_settings

from ledger.models import UsageRecord
from routing import cooldown, ratelimit
from routing.auth import key_context_for
from routing.engine import completion_create, completion_stream
from routing.errors import GatewayError
from routing.redis import redis_reset_state
from tests.routing.conftest import apply, make_tenant

pytestmark = pytest.mark.django_db(transaction=True)


def run(coro):
    """asyncio.run, then close what the engine opened on this loop (its ledger connections,
    its listener of the pushed state) and the DB connection of its worker thread, so the
    loop's shutdown has nothing left to cancel mid-statement."""
    from routing import shared_state
    from routing.db import pg_pool_close

    async def wrapper():
        try:
            return await coro
        finally:
            await shared_state.stop()
            await pg_pool_close()
            await sync_to_async(connections.close_all)()

    return asyncio.run(wrapper())


MSG = [{"role": "user", "content": "Summarise the ledger rules."}]


def _demo_routes():
    apply(
        [{"name": "demo", "provider": "demo", "base_url": "", "api_key_env": ""}],
        [
            {
                "name": "demo-gpt",
                "routes": [
                    {
                        "upstream": "demo",
                        "model": "demo-gpt",
                        "price": {"input": "2", "output": "8"},
                    }
                ],
            }
        ],
    )


def test_a_researcher_step_is_charged_and_recorded_with_its_run():
    t = make_tenant()
    _demo_routes()
    run_id = uuid.uuid4()
    ctx = key_context_for(org_id=t.org.pk, project_id=t.project.pk)
    result = run(
        completion_create(
            ctx=ctx,
            body={"model": "demo-gpt", "messages": MSG},
            request_id="rsr_" + uuid.uuid4().hex,
            kind="researcher",
            researcher_run_id=run_id,
        )
    )
    assert result.body["choices"][0]["message"]["content"].startswith(
        "Hello from the tokenforge demo"
    )
    record = UsageRecord.objects.get(request_id=result.request_id)
    assert record.kind == "researcher" and record.researcher_run_id == run_id
    assert record.api_key_id is None and record.project_id == t.project.pk
    expected = (
        Decimal(result.usage.prompt_tokens) * 2 + Decimal(result.usage.completion_tokens) * 8
    ) / 1_000_000
    assert record.cost == result.cost == expected


def test_an_in_process_stream_closed_early_settles_what_was_delivered():
    t = make_tenant()
    _demo_routes()
    ctx = key_context_for(org_id=t.org.pk, project_id=t.project.pk, api_key_id=t.api_key.pk)

    async def consume():
        handle = await completion_stream(
            ctx=ctx, body={"model": "demo-gpt", "messages": MSG}, request_id="req_inproc1"
        )
        events = handle.events()
        got = [await events.__anext__() for _ in range(4)]
        await events.aclose()
        return got

    got = run(consume())
    assert len(got) == 4
    record = UsageRecord.objects.get(request_id="req_inproc1")
    assert record.status == "settled" and record.estimated and record.stream
    assert 0 < record.completion_tokens < 10 and "client disconnected" in record.error


def test_model_checks_happen_before_any_money_moves():
    t = make_tenant(allowed_models=["demo-gpt"])
    _demo_routes()
    ctx = key_context_for(org_id=t.org.pk, project_id=t.project.pk, api_key_id=t.api_key.pk)
    with pytest.raises(GatewayError) as err:
        run(completion_create(ctx=ctx, body={"model": "other", "messages": MSG}, request_id="r1"))
    assert err.value.status == 403
    free = key_context_for(org_id=t.org.pk)
    with pytest.raises(GatewayError) as err:
        run(completion_create(ctx=free, body={"model": "other", "messages": MSG}, request_id="r2"))
    assert err.value.status == 404
    # No money moved: the refused (403) request is recorded as failed at zero cost, the
    # unknown model (404) not at all.
    [refused] = UsageRecord.objects.all()
    assert (refused.request_id, refused.status, refused.cost) == ("r1", "failed", 0)
    assert refused.transaction_id is None


@override_settings(REDIS_URL="redis://127.0.0.1:1/0")
def test_rate_limits_and_cooldown_degrade_to_in_process_when_redis_is_down():
    redis_reset_state()
    ratelimit.ratelimit_reset_local()
    cooldown.cooldown_reset_local()

    async def scenario():
        first = await ratelimit.admit(key_id=999, rpm_limit=1, tpm_limit=None, tokens=1)
        second = await ratelimit.admit(key_id=999, rpm_limit=1, tpm_limit=None, tokens=1)
        cooled = [await cooldown.failure_record(4242) for _ in range(3)]
        return first, second, cooled, await cooldown.cooled_down([4242, 1])

    try:
        first, second, cooled, now_cooled = run(scenario())
    finally:
        redis_reset_state()
        ratelimit.ratelimit_reset_local()
        cooldown.cooldown_reset_local()
    assert first.allowed and not second.allowed and second.retry_after >= 1
    assert cooled == [False, False, True] and now_cooled == {4242}


@override_settings(HOLD_TTL_SECONDS=3)
def test_a_long_stream_keeps_its_hold_alive():
    from ledger.models import Hold

    t = make_tenant()
    _demo_routes()
    ctx = key_context_for(org_id=t.org.pk, project_id=t.project.pk)

    async def consume_slowly():
        handle = await completion_stream(
            ctx=ctx, body={"model": "demo-gpt", "messages": MSG}, request_id="req_keepalive"
        )
        events = handle.events()
        await events.__anext__()
        await events.__anext__()  # the two prefetched events
        first = await sync_to_async(lambda: Hold.objects.get(pk=handle.held.hold_id).expires_at)()
        await asyncio.sleep(1.3)
        await events.__anext__()  # more than a third of the TTL later: keepalive
        await asyncio.sleep(0.3)
        later = await sync_to_async(lambda: Hold.objects.get(pk=handle.held.hold_id).expires_at)()
        await events.aclose()
        return first, later

    first, later = run(consume_slowly())
    # The keepalive runs on a timer (every third of the TTL), not only when an event arrives.
    assert (later - first).total_seconds() >= 0.5
