"""100 streaming clients hang up at the same moment: every hold is released, every upstream
call is stopped, and each request is charged for what it delivered, nothing more."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import httpx
import orjson
import pytest

from ledger.models import Account, AccountKind, UsageRecord
from routing.pricing import tokens_estimate
from tests.routing.conftest import make_tenant, one_route, wait_no_pending_holds

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = 100
CHUNKS_READ = 5


async def _stream_then_hang_up(client, url: str, key: str, ready: list, go: asyncio.Event):
    async with client.stream(
        "POST",
        url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
        },
    ) as response:
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        text, seen = [], 0
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            chunk = orjson.loads(line[6:])
            for choice in chunk.get("choices") or ():
                text.append((choice.get("delta") or {}).get("content") or "")
            seen += 1
            if seen >= CHUNKS_READ:
                break
        ready.append(request_id)
        await go.wait()  # everyone hangs up together
    return request_id, "".join(text)


async def _run(url: str, key: str):
    limits = httpx.Limits(max_connections=CLIENTS + 10)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        ready: list[str] = []
        go = asyncio.Event()
        tasks = [
            asyncio.create_task(_stream_then_hang_up(client, url, key, ready, go))
            for _ in range(CLIENTS)
        ]
        while len(ready) < CLIENTS and not any(t.done() for t in tasks):
            await asyncio.sleep(0.05)
        go.set()
        return await asyncio.gather(*tasks)


def test_100_clients_disconnecting_mid_stream_release_every_hold_and_pay_only_what_was_sent(
    gateway, upstream
):
    one_route(upstream.base_url, price_in="1", price_out="1")
    upstream.mode = "slow"  # 400 words, 20 ms apart: still streaming when the clients leave
    t = make_tenant(credit="1000")
    before = Account.objects.get(org=t.org, currency="CREDIT", kind=AccountKind.WALLET).posted

    results = asyncio.run(_run(gateway.url, t.key))

    wait_no_pending_holds(timeout=60)
    deadline = time.monotonic() + 20
    while upstream.disconnects < CLIENTS and time.monotonic() < deadline:
        time.sleep(0.1)
    assert upstream.disconnects == CLIENTS  # every upstream call was stopped
    records = {r.request_id: r for r in UsageRecord.objects.filter(org=t.org)}
    assert len(records) == CLIENTS
    full = tokens_estimate(" ".join(f"w{i}" for i in range(upstream.slow_chunks)))
    for request_id, received in results:
        record = records[request_id]
        assert record.status == "settled" and record.estimated
        assert "client disconnected" in record.error
        # At least what the client read; less than the whole answer (it stopped early).
        assert tokens_estimate(received) <= record.completion_tokens < full
        assert record.cost == Decimal(record.prompt_tokens + record.completion_tokens) / 1_000_000
    after = Account.objects.get(org=t.org, currency="CREDIT", kind=AccountKind.WALLET).posted
    assert before - after == sum(r.cost for r in records.values())
