"""Soak (on demand, not in CI: `pytest -m soak tests/reliability/test_soak.py`).

A few thousand mixed requests (chat, streams, embeddings, both wallets) against a gateway with
two worker processes, while the upstreams fail at random (500, 429, 503, malformed JSON,
streams cut mid-way or without usage, hangs past the timeout) and some clients hang up
mid-stream. Afterwards: no 500, no open hold, every settled record's cost is exactly what
left the wallets, and `reconcile` passes. SOAK_REQUESTS sets the count (default 3000).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from decimal import Decimal

import httpx
import pytest
from django.db.models import Sum

from ledger.models import UsageRecord
from tests.reliability.conftest import (
    assert_no_money_lost_or_created,
    start_server,
    wallet_totals,
)
from tests.routing.conftest import apply, make_tenant, wait_no_pending_holds

pytestmark = [pytest.mark.soak, pytest.mark.django_db(transaction=True)]

REQUESTS = int(os.environ.get("SOAK_REQUESTS", "3000"))
CONCURRENCY = 32
FAULTS = ["ok"] * 12 + ["500", "429", "503", "malformed", "cut", "no_usage", "hang"]
MSG = [{"role": "user", "content": "soak"}]


def _count(seen: Counter, response: httpx.Response) -> None:
    seen[response.status_code] += 1
    if response.status_code != 200:
        seen[f"{response.status_code} {response.json()['error']['code']}"] += 1


async def _one(client: httpx.AsyncClient, key: str, rng: random.Random, seen: Counter) -> None:
    kind = rng.choice(["chat", "stream", "stream", "embeddings"])
    model = rng.choice(["soak-credit", "soak-rmb"])
    headers = {"authorization": f"Bearer {key}"}
    if kind == "embeddings":
        response = await client.post(
            "/v1/embeddings", headers=headers, json={"model": model, "input": "soak"}
        )
        _count(seen, response)
        return
    body = {"model": model, "messages": MSG, "stream": kind == "stream"}
    if kind == "chat":
        response = await client.post("/v1/chat/completions", headers=headers, json=body)
        _count(seen, response)
        return
    hang_up_after = rng.choice([None, None, None, 2])  # a quarter of streams leave early
    async with client.stream("POST", "/v1/chat/completions", headers=headers, json=body) as r:
        if r.status_code != 200:
            await r.aread()
        _count(seen, r)
        lines = 0
        try:
            async for line in r.aiter_lines():
                lines += line.startswith("data: ")
                if hang_up_after and lines >= hang_up_after:
                    seen["hung_up"] += 1
                    break
        except httpx.HTTPError:
            seen["broken"] += 1


async def _soak(url: str, key: str, seed: int) -> Counter:
    rng = random.Random(seed)
    seen: Counter = Counter()
    gate = asyncio.Semaphore(CONCURRENCY)

    async def guarded(client):
        async with gate:
            await _one(client, key, rng, seen)

    limits = httpx.Limits(max_connections=CONCURRENCY * 2)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        await asyncio.gather(*(guarded(client) for _ in range(REQUESTS)))
    return seen


def test_soak_with_random_faults_loses_and_creates_no_money(upstream, upstream_b, tmp_path):
    seed = int(os.environ.get("SOAK_SEED", time.time()))
    rng = random.Random(seed)
    apply(
        [
            {"name": "soak-relay", "base_url": upstream.base_url, "wallet": "RMB", "timeout": 2},
            {"name": "soak-official", "base_url": upstream_b.base_url, "timeout": 2},
        ],
        [
            {
                "name": name,
                "routes": [
                    {"upstream": first, "model": "m", "price": {"input": "2", "output": "8"}},
                    {"upstream": second, "model": "m", "price": {"input": "1", "output": "4"}},
                ],
            }
            for name, first, second in (
                ("soak-rmb", "soak-relay", "soak-official"),
                ("soak-credit", "soak-official", "soak-relay"),
            )
        ],
    )
    scripts = {}
    for mock in (upstream, upstream_b):
        mock.hang_seconds = 3.0
        scripts[mock] = [rng.choice(FAULTS) for _ in range(REQUESTS * 3)]
        mock.script = list(scripts[mock])
    t = make_tenant(credit="1000", rmb="1000")
    before = wallet_totals()
    server = start_server(
        {"ROUTING_COOLDOWN_FAILURES": "1000"}, workers=2, log_path=tmp_path / "server.log"
    )
    started = time.monotonic()
    try:
        seen = asyncio.run(_soak(server.url, t.key, seed))
    finally:
        server.stop()
    elapsed = time.monotonic() - started
    wait_no_pending_holds(timeout=60)
    spent = {
        row["wallet"]: row["s"]
        for row in UsageRecord.objects.filter(org=t.org, status="settled")
        .values("wallet")
        .annotate(s=Sum("cost"))
    }
    after = wallet_totals()
    for currency in ("CREDIT", "RMB"):
        assert before[currency] - after[currency] == spent.get(currency, Decimal(0)), currency
    faults = Counter(
        mode
        for mock, script in scripts.items()
        for mode in script[: len(script) - len(mock.script)]  # the part that was played
        if mode != "ok"
    )
    print(
        f"\nsoak seed={seed} requests={REQUESTS} in {elapsed:.1f}s statuses={dict(seen)} "
        f"records={UsageRecord.objects.filter(org=t.org).count()} spent={spent}"
        f" upstream_faults_injected={sum(faults.values())} {dict(faults)}"
    )
    assert seen[500] == 0, server.log()[-5000:]
    assert sum(v for k, v in seen.items() if isinstance(k, int)) == REQUESTS
    assert_no_money_lost_or_created()
