"""Researcher spend never shows in API totals and the reverse: overview, usage, ledger
filters, CSV, the balance-drop explainer and the operator overview all keep them apart."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from ledger.models import UsageRecord
from ledger.selectors_dashboard import (
    LedgerFilter,
    UsageFilter,
    balance_drop,
    overview_get,
    requests_filtered,
    transactions_filtered,
    usage_table,
)
from ledger.selectors_operator import date_range_default, margin_by_kind
from researcher.execution import run_execute
from researcher.services import run_create
from tests.researcher.conftest import (
    api_call,
    make_tenant,
    member_client,
    research_routes,
    run_body,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_researcher_and_api_spend_are_kept_apart_everywhere(upstream):
    t = make_tenant()
    research_routes(upstream.base_url)
    run, _ = run_create(org_id=t.org.pk, project_id=t.project.pk, data=run_body(), enqueue=False)
    assert run_execute(run_id=run.pk) == "succeeded"
    run.refresh_from_db()
    api_id = api_call(t)
    api_cost = UsageRecord.objects.get(request_id=api_id).cost
    assert run.spent > 0 and api_cost > 0 and run.spent != api_cost

    kinds = {(r["kind"], r["wallet"]): r["month"] for r in overview_get(org=t.org).spend_by_kind}
    assert kinds[("researcher", "CREDIT")] == run.spent
    assert kinds[("api", "CREDIT")] == api_cost

    today = date.today()
    window = UsageFilter(start=today - timedelta(days=1), end=today + timedelta(days=1))
    for kind, expected in (("api", api_cost), ("researcher", run.spent)):
        rows = usage_table(
            org=t.org,
            flt=UsageFilter(start=window.start, end=window.end, kind=kind),
            group_by="model",
        )
        assert {r["kind"] for r in rows} == {kind}
        assert sum((r["cost"] for r in rows), Decimal(0)) == expected
        ids = set(
            requests_filtered(org=t.org, flt=LedgerFilter(kind=kind)).values_list(
                "request_id", flat=True
            )
        )
        assert (api_id in ids) == (kind == "api")
        txns = transactions_filtered(org=t.org, flt=LedgerFilter(kind=kind))
        assert {x.usage.kind for x in txns} == {kind}

    client = member_client(t.org, "viewer")
    response = client.get(reverse("ledger:ledger_csv") + "?kind=api")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["request_id"] for r in rows] == [api_id]

    drop = balance_drop(
        org=t.org, currency="CREDIT", start=today - timedelta(days=1), end=today + timedelta(days=1)
    )
    by_kind = {}
    for row in drop.usage:
        by_kind[row["kind"]] = by_kind.get(row["kind"], Decimal(0)) + row["amount"]
    assert -by_kind["researcher"] == run.spent and -by_kind["api"] == api_cost
    assert {row["researcher_run_id"] for row in drop.usage if row["kind"] == "researcher"} == {
        run.pk
    }

    margins = {row["kind"]: row["revenue"] for row in margin_by_kind(window=date_range_default())}
    assert margins["researcher"] >= run.spent and margins["api"] >= api_cost
