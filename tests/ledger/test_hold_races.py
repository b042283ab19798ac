"""Capture, void, expiry and a duplicate capture racing on one hold: one wins, the rest
see its result, and money moves once."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledger.models import Hold, HoldStatus, Transaction, UsageRecord
from ledger.services.holds import Settlement, hold_capture, hold_place, hold_void, holds_expire
from tests.factories import OrganizationFactory, ProjectFactory
from tests.ledger.ledger_helpers import assert_reconciled, fund, run_at_once, wallet

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 6


def _capture(hold_id, cost, request_id):
    return hold_capture(
        hold_id=hold_id,
        amount=Decimal(cost),
        usage={"request_id": request_id, "model": "m", "wallet": "CREDIT"},
    )


def _void(hold_id, request_id):
    return hold_void(
        hold_id=hold_id, usage={"request_id": request_id, "model": "m", "wallet": "CREDIT"}
    )


def _expire():
    return holds_expire()


def test_capture_void_expiry_and_duplicate_capture_race_and_one_wins():
    org = OrganizationFactory()
    project = ProjectFactory(org=org)
    fund(org, "CREDIT", "100")
    expected_posted = Decimal("100")
    winners: dict[str, int] = {}
    for round_no in range(ROUNDS):
        # Expired from the start, so the sweep competes too.
        hold = hold_place(
            org_id=org.pk,
            currency="CREDIT",
            amount=Decimal("1"),
            project_id=project.pk,
            ttl_seconds=-1,
        )
        results = run_at_once(
            lambda op, *args: op(*args),
            [
                (_capture, hold.pk, "0.30", f"r{round_no}-c1"),
                (_capture, hold.pk, "0.70", f"r{round_no}-c2"),
                (_void, hold.pk, f"r{round_no}-v"),
                (_expire,),
            ],
        )
        assert not [r for r in results if isinstance(r, Exception)], results
        settlements = [r for r in results if isinstance(r, Settlement)]
        swept = results[3]
        created = [s for s in settlements if s.created]
        assert len(created) + swept == 1, results  # exactly one resolution

        final = Hold.objects.get(pk=hold.pk)
        assert final.status != HoldStatus.PENDING
        for losing in (s for s in settlements if not s.created):
            assert losing.hold.status == final.status  # the rest see the winner's result
            assert losing.hold.captured_amount == final.captured_amount
        assert Transaction.objects.filter(hold_id=hold.pk).count() == (
            1 if final.status == HoldStatus.CAPTURED else 0
        )
        assert UsageRecord.objects.filter(hold_id=hold.pk).count() == (0 if swept else 1)
        if final.status == HoldStatus.CAPTURED:
            expected_posted -= final.captured_amount
        winners[final.status] = winners.get(final.status, 0) + 1

        w = wallet(org)
        assert (w.posted, w.held) == (expected_posted, Decimal("0"))
        assert_reconciled()
    assert sum(winners.values()) == ROUNDS
