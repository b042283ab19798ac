"""The hold still bounds the cost with every price part: each input token is held at the
dearest input-side part (cache writes, audio, tiers), each output token at the dearest
output-side part, plus the flat fee; the catalog's context window caps the prompt held for."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from ledger.models import Hold
from routing.auth import key_context_for
from routing.engine import completion_create
from routing.models import Route
from routing.selectors import routing_cache_clear
from tests.routing.conftest import apply, make_tenant

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {"messages": [{"role": "user", "content": "How much is held? " * 40}], "max_tokens": 10}


def _held(tenant, model: str) -> Decimal:
    ctx = key_context_for(
        org_id=tenant.org.pk, project_id=tenant.project.pk, api_key_id=tenant.api_key.pk
    )
    request_id = f"req_{uuid.uuid4().hex[:12]}"

    async def call():
        try:
            await completion_create(ctx=ctx, body={**BODY, "model": model}, request_id=request_id)
        finally:
            await sync_to_async(connections.close_all)()

    asyncio.run(call())
    return Hold.objects.get(request_id=request_id).amount


def test_the_hold_prices_input_at_the_dearest_input_part_and_output_at_the_dearest_output():
    tenant = make_tenant()
    route = lambda price: [{"upstream": "demo", "model": "demo-gpt", "price": price}]  # noqa: E731
    apply(
        [{"name": "demo", "provider": "demo", "base_url": "", "api_key_env": ""}],
        [
            {"name": "plain-in", "routes": route({"input": "1", "output": "0"})},
            {"name": "dear-in", "routes": route({"input": "1", "output": "0", "cache_write_1h": "5"})},
            {"name": "plain-out", "routes": route({"input": "0", "output": "1"})},
            {
                "name": "dear-out",
                "routes": route(
                    {
                        "input": "0",
                        "output": "1",
                        "per_request": "0.5",
                        "tiers": [{"above_input_tokens": 100000, "reasoning": "7"}],
                    }
                ),
            },
        ],
    )  # fmt: skip
    plain_in, plain_out = _held(tenant, "plain-in"), _held(tenant, "plain-out")
    assert plain_in > 0 and plain_out == Decimal("0.00001")  # 10 output tokens at 1 per 1M
    assert _held(tenant, "dear-in") == plain_in * 5
    assert _held(tenant, "dear-out") == plain_out * 7 + Decimal("0.5")

    Route.objects.filter(model__name="dear-in").update(context_window=12)
    routing_cache_clear()
    assert _held(tenant, "dear-in") == Decimal(12 * 5) / 1_000_000
