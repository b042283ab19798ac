"""Requests that outlive their hold are still charged (issue 12, section 3): a hold lives at
least as long as its route's timeout, every in-flight request keeps it alive on a timer, and a
capture that still finds it expired charges the request anyway (recorded and alerted)."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from accounts.models import AuditEvent
from ledger.models import Account, AccountKind, Hold, HoldStatus, Posting, UsageRecord
from ledger.services.holds import hold_place, hold_void, holds_expire
from routing import engine
from routing.auth import key_context_for
from routing.engine import completion_create
from tests.mocks.openai_upstream import MockOpenAI
from tests.routing.conftest import make_tenant, one_route
from tests.routing.test_engine_in_process import run

pytestmark = pytest.mark.django_db(transaction=True)

MSG = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def _slow():
    server = MockOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def slow(_slow) -> MockOpenAI:
    """An upstream that answers after 4 s (the route's timeout is 5 s)."""
    _slow.reset()
    _slow.mode = "hang"
    _slow.hang_seconds = 4.0
    one_route(_slow.base_url, price_in="1", price_out="1")
    return _slow


def _wallet(org) -> Account:
    return Account.objects.get(org=org, currency="CREDIT", kind=AccountKind.WALLET)


def _answered_while_the_sweep_runs_at_3s(t) -> tuple:
    """The request (answered at 4 s) and the expiry sweep at 3 s, side by side."""
    ctx = key_context_for(org_id=t.org.pk, project_id=t.project.pk)
    rid = "req_" + uuid.uuid4().hex

    async def scenario():
        request = asyncio.ensure_future(
            completion_create(
                ctx=ctx, body={"model": "gpt-4o-mini", "messages": MSG}, request_id=rid
            )
        )
        await asyncio.sleep(3)
        swept = await sync_to_async(holds_expire, thread_sensitive=False)()
        return await request, swept

    result, swept = run(scenario())
    return rid, result, swept


@override_settings(HOLD_TTL_SECONDS=2)
def test_a_request_answered_after_the_hold_ttl_is_charged_and_recorded(slow):
    t = make_tenant(credit="10")
    rid, result, swept = _answered_while_the_sweep_runs_at_3s(t)
    assert swept == 0  # the hold lives at least the route's timeout x tries
    record = UsageRecord.objects.get(request_id=rid)
    assert record.status == "settled" and record.cost == result.cost > 0
    assert _wallet(t.org).posted == Decimal("10") - result.cost
    assert Hold.objects.get(request_id=rid).status == HoldStatus.CAPTURED


@override_settings(HOLD_TTL_SECONDS=2)
def test_a_non_streamed_request_keeps_its_hold_alive_while_it_waits(slow, monkeypatch):
    monkeypatch.setattr(engine, "_hold_ttl", lambda route: 2)  # only the keepalive saves it
    t = make_tenant(credit="10")
    rid, result, swept = _answered_while_the_sweep_runs_at_3s(t)
    assert swept == 0
    record = UsageRecord.objects.get(request_id=rid)
    assert record.status == "settled" and record.anomalies == []
    assert _wallet(t.org).posted == Decimal("10") - result.cost


@override_settings(HOLD_TTL_SECONDS=2)
def test_a_capture_that_finds_its_hold_expired_charges_the_request_anyway(slow, monkeypatch):
    monkeypatch.setattr(engine, "_hold_ttl", lambda route: 2)
    monkeypatch.setattr(engine, "_keeper_interval", lambda stream: 3600.0)  # keepalive missed
    t = make_tenant(credit="10")
    rid, result, swept = _answered_while_the_sweep_runs_at_3s(t)
    assert swept == 1  # the sweep expired the hold under the request
    from ledger.services.safeguards import ANOMALY_LATE_CAPTURE, anomaly

    record = UsageRecord.objects.get(request_id=rid)
    assert record.status == "settled" and record.cost == result.cost > 0
    assert anomaly(ANOMALY_LATE_CAPTURE) in record.anomalies
    assert _wallet(t.org).posted == Decimal("10") - result.cost
    hold = Hold.objects.get(request_id=rid)
    assert hold.status == HoldStatus.CAPTURED and hold.captured_amount == result.cost
    assert AuditEvent.objects.filter(action="ledger.late_capture").count() == 1


def test_a_late_capture_the_wallet_cannot_pay_goes_to_shortfall_and_alerts():
    from ledger.services.safeguards import (
        ANOMALY_LATE_CAPTURE,
        ANOMALY_SHORTFALL,
        anomaly,
        hold_capture_late,
    )

    t = make_tenant(credit="1")
    hold = hold_place(org_id=t.org.pk, currency="CREDIT", amount=Decimal("1"), request_id="late1")
    hold_void(hold_id=hold.pk, expired=True)
    usage = {"request_id": "late1", "model": "m", "upstream": "relay-a", "wallet": "CREDIT"}
    usage |= {"price_input": "1", "price_output": "1", "price_cached_input": "1"}
    record = hold_capture_late(hold_id=hold.pk, amount=Decimal("3"), usage=usage)
    assert record.cost == Decimal("3")
    assert anomaly(ANOMALY_LATE_CAPTURE) in record.anomalies
    assert anomaly(ANOMALY_SHORTFALL) in record.anomalies
    assert _wallet(t.org).posted == 0  # it paid what it had
    shortfall = Posting.objects.filter(account__kind=AccountKind.SHORTFALL)
    assert sum(p.amount for p in shortfall) == Decimal("-2")
    # exactly once
    assert hold_capture_late(hold_id=hold.pk, amount=Decimal("3"), usage=usage) is None
    assert UsageRecord.objects.filter(request_id="late1").count() == 1
