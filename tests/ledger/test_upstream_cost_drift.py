"""Drift: an upstream's reported cost next to the cost our price parts computed, per upstream
and day in the operator overview (and the alert past the threshold), and
`reconcile_upstream --upstream NAME --file BILL.csv` printing an exported bill's mismatches."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from ledger.models import UsageRecord, UsageStatus
from ledger.selectors_operator import DateRange, cost_drift_by_upstream_day
from ledger.services.drift import cost_drift_alerts_check
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _record(org, upstream: str, *, computed: str, reported: str | None, at=NOW, **tokens):
    record = UsageRecord.objects.create(
        request_id=f"req_{uuid.uuid4().hex[:16]}",
        org=org,
        model="pub",
        upstream=upstream,
        upstream_model="up-model",
        wallet="CREDIT",
        prompt_tokens=tokens.get("prompt", 1000),
        completion_tokens=tokens.get("completion", 100),
        price_input=Decimal("1"),
        price_output=Decimal("2"),
        price_cached_input=Decimal("1"),
        price_parts={"input": "1", "output": "2", "defaulted": [], "upstream_cost": computed},
        reported_cost=None if reported is None else Decimal(reported),
        cost=Decimal(computed) * Decimal("1.2"),  # the organization's multiplier
        status=UsageStatus.SETTLED,
        created_at=at,
    )
    return record


def test_computed_and_reported_costs_are_summed_per_upstream_and_day_with_the_difference():
    org = OrganizationFactory()
    _record(org, "relay-x", computed="0.0010", reported="0.0010")
    _record(org, "relay-x", computed="0.0020", reported="0.0023")
    _record(org, "relay-x", computed="0.0050", reported=None)  # reported nothing: not counted
    _record(org, "relay-x", computed="0.0040", reported="0.0040", at=NOW - timedelta(days=1))
    rows = cost_drift_by_upstream_day(window=DateRange(NOW.date() - timedelta(days=1), NOW.date()))
    today, yesterday = rows
    assert (today["day"], today["requests"]) == (NOW.date(), 2)
    assert (today["computed"], today["reported"]) == (Decimal("0.003"), Decimal("0.0033"))
    assert today["difference"] == Decimal("0.0003") and today["difference_pct"] == Decimal(10)
    assert today["alert"] is True  # 10% > the 2% threshold
    assert yesterday["difference"] == 0 and yesterday["alert"] is False


def test_the_alert_fires_once_per_upstream_and_day_past_the_threshold(settings):
    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.UPSTREAM_COST_DRIFT_THRESHOLD = "0.05"
    org = OrganizationFactory()
    name = f"drifty-{uuid.uuid4().hex[:6]}"
    _record(org, name, computed="0.0100", reported="0.0104")  # 4%: under 5%
    assert cost_drift_alerts_check(day=NOW.date()) == []
    _record(org, name, computed="0.0100", reported="0.0110")  # now 7% over the day
    assert len(cost_drift_alerts_check(day=NOW.date())) == 1
    assert len(mail.outbox) == 1 and name in mail.outbox[0].subject
    cost_drift_alerts_check(day=NOW.date())
    assert len(mail.outbox) == 1  # once per upstream and day


def test_the_operator_overview_shows_the_drift_table(admin_client):
    org = OrganizationFactory()
    _record(org, "relay-y", computed="0.0020", reported="0.0030", at=datetime.now(UTC))
    page = admin_client.get("/admin/overview/")
    html = page.content.decode()
    assert page.status_code == 200 and 'id="overview-drift"' in html
    table = html[html.index('id="overview-drift"') :]
    table = table[: table.index("</table>")]
    assert "relay-y" in table and "0.001000" in table and "Drift above" in table


BILL = """request_id,time,model,prompt_tokens,completion_tokens,cost
{a},,up-model,1000,100,0.0010
,{t_b},up-model,1000,100,0.0020
,{t_c},up-model,1000,100,0.0031
,{t_d},up-model,5,5,0.0001
"""


def _bill(tmp_path, text: str):
    path = tmp_path / "bill.csv"
    path.write_text(text)
    return str(path)


def test_reconcile_upstream_matches_by_request_id_or_time_and_prints_the_mismatches(tmp_path):
    org = OrganizationFactory()
    a = _record(org, "billing-up", computed="0.0010", reported=None)
    b = _record(org, "billing-up", computed="0.0020", reported=None, at=NOW + timedelta(seconds=30))
    c = _record(org, "billing-up", computed="0.0030", reported=None, at=NOW + timedelta(seconds=60))
    missing = _record(
        org, "billing-up", computed="0.0007", reported=None, at=NOW + timedelta(seconds=120),
        prompt=7, completion=7,
    )  # fmt: skip
    stray = _record(org, "billing-up", computed="0.0007", reported=None, at=NOW + timedelta(days=1))
    _record(org, "other-up", computed="0.0007", reported=None, at=NOW)  # another upstream
    text = BILL.format(
        a=a.request_id,
        t_b=(b.created_at + timedelta(seconds=2)).isoformat(),
        t_c=c.created_at.isoformat().replace("+00:00", "Z"),
        t_d=NOW.isoformat(),
    )
    out = io.StringIO()
    with pytest.raises(CommandError, match="3 mismatch"):
        call_command(
            "reconcile_upstream", "--upstream", "billing-up", "--file", _bill(tmp_path, text),
            stdout=out,
        )  # fmt: skip
    lines = out.getvalue().splitlines()
    assert any(
        c.request_id in line and "cost bill 0.0031 vs computed 0.003" in line for line in lines
    )
    assert any(line.startswith("line 5: no usage record of billing-up") for line in lines)
    assert not any(a.request_id in line or b.request_id in line for line in lines[:-1])
    assert any(line.startswith(f"record {missing.request_id}") for line in lines)
    assert stray.request_id not in out.getvalue()  # outside the bill's time range
    assert lines[-1].startswith("4 bill line(s), 3 matched, 3 mismatch(es)")


def test_a_bill_that_agrees_passes_and_a_bill_without_cost_is_refused(tmp_path):
    org = OrganizationFactory()
    a = _record(org, "clean-up", computed="0.0010", reported=None)
    out = io.StringIO()
    call_command(
        "reconcile_upstream",
        "--upstream",
        "clean-up",
        "--file",
        _bill(tmp_path, f"request_id,cost\n{a.request_id},0.00100049\n"),
        stdout=out,
    )
    assert "1 matched, 0 mismatch(es)" in out.getvalue()
    with pytest.raises(CommandError, match="needs a cost column"):
        call_command(
            "reconcile_upstream", "--upstream", "clean-up", "--file",
            _bill(tmp_path, "request_id,model\nx,y\n"),
        )  # fmt: skip
