"""The CSV export reads in keyset batches and, under ASGI, streams through an async iterator
(an ASGI server buffers a synchronous iterator whole before sending the first byte)."""

from __future__ import annotations

import csv
import io

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient
from django.urls import reverse

from ledger.views import ledger as ledger_views
from tests.projects.dashboard_fixtures import *  # noqa: F403
from tests.projects.dashboard_fixtures import usage_add

pytestmark = pytest.mark.django_db


def _ids(body: bytes) -> list[str]:
    return [row["request_id"] for row in csv.DictReader(io.StringIO(body.decode()))]


def test_every_row_comes_once_across_batches_newest_first(tenant, monkeypatch):
    monkeypatch.setattr(ledger_views, "CSV_BATCH", 3)
    for _ in range(7):
        usage_add(org=tenant.org, project=tenant.project, api_key=tenant.key)
    expected = list(
        tenant.org.usage_records.order_by("-created_at", "-id").values_list("request_id", flat=True)
    )
    response = tenant.client().get(reverse("ledger:ledger_csv"))
    ids = _ids(b"".join(response.streaming_content))
    assert ids == expected and len(ids) == 8  # 7 + the tenant's first request


def test_under_asgi_the_export_is_an_async_stream(tenant, monkeypatch):
    monkeypatch.setattr(ledger_views, "CSV_BATCH", 2)
    for _ in range(4):
        usage_add(org=tenant.org, project=tenant.project, api_key=tenant.key)
    client = AsyncClient()
    client.force_login(tenant.users["owner"])

    async def fetch():
        response = await client.get(reverse("ledger:ledger_csv"))
        assert response.is_async
        return b"".join([chunk async for chunk in response.streaming_content])

    assert len(_ids(async_to_sync(fetch)())) == 5
