"""A worker SIGKILLed right after it answered a non-streamed request: the answer was charged
before it left (issue 12, section 1), even under `make serve`'s ROUTING_SETTLE_AFTER_RESPONSE.

To make the window between "answer sent" and "capture committed" wide and certain, the test
holds the wallet's row lock while the upstream answers: a gateway that answers before its
capture commits sends the response and dies with the capture still waiting for the lock."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from django.db import connection, transaction
from django.utils import timezone

from ledger.models import Account, AccountKind, Hold, HoldStatus, UsageRecord
from ledger.services.holds import holds_expire
from tests.reliability.conftest import assert_no_money_lost_or_created, start_server
from tests.routing.conftest import make_tenant, one_route

pytestmark = pytest.mark.django_db(transaction=True)


def _lock_wallet(wallet_id: int, locked: threading.Event, seconds: float) -> None:
    try:
        with transaction.atomic():
            Account.objects.select_for_update().get(pk=wallet_id)
            locked.set()
            time.sleep(seconds)
    finally:
        connection.close()


def test_a_worker_killed_right_after_a_non_streamed_answer_has_charged_it(upstream, tmp_path):
    one_route(upstream.base_url, price_in="1", price_out="1")
    upstream.mode = "hang"
    upstream.hang_seconds = 1.0  # the hold is placed, then the answer comes a second later
    t = make_tenant(credit="10")
    wallet = Account.objects.get(org=t.org, currency="CREDIT", kind=AccountKind.WALLET)
    server = start_server(
        {"HOLD_TTL_SECONDS": "2", "ROUTING_SETTLE_AFTER_RESPONSE": "true"},
        log_path=tmp_path / "server.log",
    )
    answers: list[httpx.Response] = []

    def ask() -> None:
        response = httpx.post(
            server.url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {t.key}"},
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        )
        server.kill()  # the instant the answer is in: no shutdown, no settlement after it
        answers.append(response)

    asker = threading.Thread(target=ask)
    locked = threading.Event()
    try:
        asker.start()
        deadline = time.monotonic() + 10
        while not Hold.objects.filter(org=t.org, status=HoldStatus.PENDING).exists():
            assert time.monotonic() < deadline, "the hold was never placed"
            time.sleep(0.01)
        locker = threading.Thread(target=_lock_wallet, args=(wallet.pk, locked, 2.5))
        locker.start()
        assert locked.wait(5)
        asker.join(30)
        locker.join(30)
    finally:
        server.kill()
    assert len(answers) == 1 and answers[0].status_code == 200, server.log()
    cost = Decimal(answers[0].headers["x-tokenforge-cost"])
    assert cost > 0
    # Whatever the crash left pending expires (time passes), and the sweep runs.
    Hold.objects.filter(status=HoldStatus.PENDING).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    holds_expire()
    record = UsageRecord.objects.get(request_id=answers[0].headers["x-request-id"])
    assert record.status == "settled" and record.cost == cost
    wallet.refresh_from_db()
    assert wallet.posted == Decimal("10") - cost and wallet.held == 0
    assert_no_money_lost_or_created()
