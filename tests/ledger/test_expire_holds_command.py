"""`python manage.py expire_holds` voids expired holds once and says how many."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from ledger.models import Hold, HoldStatus
from ledger.services.holds import hold_keepalive, hold_place, holds_expire
from tests.ledger.ledger_helpers import assert_reconciled, fund, wallet

pytestmark = pytest.mark.django_db


def _sweep() -> str:
    out = StringIO()
    call_command("expire_holds", stdout=out)
    return out.getvalue().strip()


def test_expire_holds_voids_only_expired_holds_and_releases_their_funds(org, project):
    fund(org, "CREDIT", "10")
    expired = [
        hold_place(org_id=org.pk, currency="CREDIT", amount=Decimal("1"), ttl_seconds=-5)
        for _ in range(3)
    ]
    live = hold_place(org_id=org.pk, currency="CREDIT", amount=Decimal("2"), ttl_seconds=600)
    assert wallet(org).held == Decimal("5")

    assert _sweep() == "Voided 3 expired hold(s)."
    assert set(
        Hold.objects.filter(pk__in=[h.pk for h in expired]).values_list("status", flat=True)
    ) == {HoldStatus.EXPIRED}
    assert Hold.objects.get(pk=live.pk).status == HoldStatus.PENDING
    assert wallet(org).held == Decimal("2")
    assert wallet(org).posted == Decimal("10")
    assert_reconciled()

    assert _sweep() == "Voided 0 expired hold(s)."  # a second sweep changes nothing
    assert wallet(org).held == Decimal("2")


def test_a_hold_kept_alive_by_its_stream_is_not_swept(org):
    fund(org, "CREDIT", "5")
    streaming = hold_place(org_id=org.pk, currency="CREDIT", amount=Decimal("1"), ttl_seconds=-5)
    assert hold_keepalive(hold_id=streaming.pk, ttl_seconds=600)
    assert _sweep() == "Voided 0 expired hold(s)."
    assert Hold.objects.get(pk=streaming.pk).status == HoldStatus.PENDING
    assert wallet(org).held == Decimal("1")


@pytest.mark.django_db(transaction=True)
def test_sweeps_racing_after_a_crash_return_the_funds_once():
    """A process died between hold and capture: several sweepers at once void each hold once."""
    from tests.factories import OrganizationFactory
    from tests.ledger.ledger_helpers import run_at_once

    org = OrganizationFactory()
    fund(org, "CREDIT", "30")
    for _ in range(24):
        hold_place(org_id=org.pk, currency="CREDIT", amount=Decimal("1"), ttl_seconds=-1)
    assert wallet(org).available == Decimal("6")

    results = run_at_once(holds_expire, [()] * 4)
    assert sum(results) == 24, results
    assert wallet(org).held == 0 and wallet(org).posted == Decimal("30")
    assert Hold.objects.filter(status=HoldStatus.EXPIRED).count() == 24
    assert_reconciled()
