"""The dashboard names the surface each request came through (issue 13): the usage page has
a "By endpoint" table, the ledger list and its CSV an endpoint column, and the request story
the endpoint and what was left out for the upstream."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from ledger.models import UsageRecord
from tests.projects.dashboard_fixtures import *  # noqa: F403
from tests.projects.dashboard_fixtures import usage_add

pytestmark = pytest.mark.django_db


def _responses_record(tenant) -> UsageRecord:
    return usage_add(
        org=tenant.org,
        project=tenant.project,
        api_key=tenant.key,
        cost="0.5",
        endpoint="responses",
        dropped=["web_search", "include"],
    )


def test_the_usage_page_groups_spend_by_endpoint(tenant):
    _responses_record(tenant)
    response = tenant.client("viewer").get(reverse("ledger:usage"))
    assert response.status_code == 200
    table = response.context["tables"]["By endpoint"]
    labels = {row["label"]: row for row in table}
    assert "responses" in labels and labels["responses"]["requests"] == 1
    assert "By endpoint" in response.content.decode()


def test_the_ledger_list_and_csv_show_the_endpoint(tenant):
    record = _responses_record(tenant)
    page = tenant.client().get(reverse("ledger:ledger")).content.decode()
    assert "<th>Endpoint</th>" in page and '<td data-label="Endpoint">responses</td>' in page
    response = tenant.client().get(reverse("ledger:ledger_csv"))
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    row = next(r for r in rows if r["request_id"] == record.request_id)
    assert row["endpoint"] == "responses"


def test_the_request_story_shows_the_endpoint_and_what_was_left_out(tenant):
    record = _responses_record(tenant)
    page = tenant.client().get(reverse("ledger:request_detail", args=[record.request_id]))
    text = page.content.decode()
    assert "<td>responses</td>" in text
    assert "web_search, include" in text
