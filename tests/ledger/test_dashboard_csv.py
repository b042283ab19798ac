"""The ledger's CSV export streams the filtered requests."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.http import StreamingHttpResponse
from django.urls import reverse

from tests.projects.dashboard_fixtures import *  # noqa: F403
from tests.projects.dashboard_fixtures import usage_add

pytestmark = pytest.mark.django_db


def test_csv_export_streams_only_the_filtered_rows(tenant):
    wanted = usage_add(org=tenant.org, project=tenant.project, api_key=tenant.key, model="m-wanted")
    usage_add(org=tenant.org, project=tenant.project, api_key=tenant.key, model="m-other")
    failed = usage_add(
        org=tenant.org, project=tenant.project, model="m-wanted", status="failed", cost="0"
    )
    response = tenant.client("viewer").get(reverse("ledger:ledger_csv") + "?model=m-wanted")
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {row["request_id"] for row in rows} == {wanted.request_id, failed.request_id}
    settled = next(row for row in rows if row["request_id"] == wanted.request_id)
    assert Decimal(settled["cost"]) == Decimal("0.25")
    assert settled["upstream"] == "openai-main"
    assert settled["wallet"] == "CREDIT"
    assert settled["transaction_id"] == str(wanted.transaction_id)


def test_csv_export_filters_by_status_and_wallet(tenant):
    rmb = usage_add(org=tenant.org, project=tenant.project, wallet="RMB", cost="3")
    response = tenant.client().get(reverse("ledger:ledger_csv") + "?wallet=RMB&status=settled")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["request_id"] for row in rows] == [rmb.request_id]


def test_ledger_list_pages_with_a_cursor_and_no_duplicates(tenant):
    for _ in range(60):
        usage_add(org=tenant.org, project=tenant.project, cost="0.01")
    client = tenant.client()
    first = client.get(reverse("ledger:ledger"))
    page1 = first.context["page"]
    assert len(page1.rows) == 50 and page1.next_cursor
    second = client.get(reverse("ledger:ledger"), {"cursor": page1.next_cursor})
    page2 = second.context["page"]
    ids1 = {r.pk for r in page1.rows}
    ids2 = {r.pk for r in page2.rows}
    assert not ids1 & ids2
    assert len(ids1 | ids2) == 61  # 60 + the tenant's first request
    assert page2.next_cursor is None


def test_bad_filter_values_are_ignored_not_errors(tenant):
    url = reverse("ledger:ledger") + "?project=abc&start=notadate&wallet=EUR&cursor=garbage"
    assert tenant.client().get(url).status_code == 200
    assert tenant.client().get(reverse("ledger:usage") + "?start=2026-13-01").status_code == 200
