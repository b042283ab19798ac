from __future__ import annotations

import openai
import pytest

from ledger.models import UsageRecord
from tests.routing.conftest import make_tenant, one_route

pytestmark = pytest.mark.django_db(transaction=True)

MSG = [{"role": "user", "content": "hi"}]


def test_with_redis_down_the_gateway_keeps_serving_and_limiting_in_process(
    gateway_without_redis, upstream
):
    one_route(upstream.base_url)
    t = make_tenant(rpm_limit=2)
    client = gateway_without_redis.client(t.key)
    client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True))
    assert chunks
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert UsageRecord.objects.filter(org=t.org, status="settled").count() == 2
