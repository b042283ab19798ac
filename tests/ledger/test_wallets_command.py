"""`python manage.py wallets --org SLUG` prints both wallets as JSON decimal strings."""

from __future__ import annotations

import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from ledger.services.holds import hold_place
from tests.ledger.ledger_helpers import fund

pytestmark = pytest.mark.django_db


def test_wallets_prints_posted_held_and_available_for_each_currency(org):
    fund(org, "CREDIT", "12.5")
    fund(org, "RMB", "3")
    hold_place(org_id=org.pk, currency="CREDIT", amount=Decimal("2.25"))
    out = StringIO()
    call_command("wallets", "--org", org.slug, stdout=out)
    rows = json.loads(out.getvalue().strip().splitlines()[-1])
    by_currency = {row["currency"]: row for row in rows}
    assert set(by_currency) == {"CREDIT", "RMB"}
    credit = by_currency["CREDIT"]
    assert all(isinstance(credit[k], str) for k in ("posted", "held", "available"))
    assert Decimal(credit["posted"]) == Decimal("12.5")
    assert Decimal(credit["held"]) == Decimal("2.25")
    assert Decimal(credit["available"]) == Decimal("10.25")
    assert Decimal(by_currency["RMB"]["available"]) == Decimal("3")


def test_wallets_of_an_unknown_org_is_an_error(db):
    with pytest.raises(CommandError, match="Unknown organization"):
        call_command("wallets", "--org", "missing")
