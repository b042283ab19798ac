"""`manage.py topup`: an operator grant, idempotent by reference; bad input moves nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from ledger.errors import InvalidAmount
from ledger.models import TopUp, TopUpProvider, TopUpStatus, Transaction
from ledger.services.topups import topup_grant
from tests.ledger.topup_helpers import assert_wallets_consistent, posted

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("topup", *args, stdout=out)
    return out.getvalue()


def test_running_the_command_twice_credits_once(org):
    args = ("--org", org.slug, "--currency", "RMB", "--amount", "12.50", "--reference", "R-1")
    first = _run(*args)
    second = _run(*args)
    assert "Credited" in first
    assert "already credited" in second and "nothing moved" in second
    assert posted(org, "RMB") == Decimal("12.50")
    assert Transaction.objects.filter(reference="grant:R-1").count() == 1
    topup = TopUp.objects.get(org=org)
    assert (topup.provider, topup.status, topup.amount) == (
        TopUpProvider.OPERATOR,
        TopUpStatus.PAID,
        Decimal("12.50"),
    )
    assert_wallets_consistent()


@pytest.mark.parametrize(
    ("currency", "amount", "message"),
    [
        ("USD", "1", "Unknown currency"),
        ("CREDIT", "-1", "greater than zero"),
        ("CREDIT", "0", "greater than zero"),
        ("CREDIT", "abc", "not a number"),
        ("CREDIT", "NaN", "finite"),
        ("CREDIT", "Infinity", "finite"),
        ("CREDIT", "0.00000000001", "decimal places"),
        ("CREDIT", "99999999999", "at most"),
    ],
)
def test_bad_currency_or_amount_is_refused_and_nothing_moves(org, currency, amount, message):
    with pytest.raises(CommandError, match=message):
        _run("--org", org.slug, "--currency", currency, "--amount", amount, "--reference", "X")
    assert not Transaction.objects.exists()
    assert not TopUp.objects.exists()
    assert posted(org, "CREDIT") == 0 and posted(org, "RMB") == 0


def test_unknown_org_is_refused(db):
    with pytest.raises(CommandError, match="Unknown organization"):
        _run("--org", "nope", "--currency", "CREDIT", "--amount", "1", "--reference", "X")


def test_reusing_a_reference_for_a_different_grant_is_refused(org):
    topup_grant(org=org, currency="CREDIT", amount=Decimal("5"), reference="same")
    with pytest.raises(CommandError, match="different grant"):
        _run("--org", org.slug, "--currency", "CREDIT", "--amount", "6", "--reference", "same")
    assert posted(org, "CREDIT") == Decimal("5")
    assert_wallets_consistent()


def test_grant_service_refuses_floats(org):
    with pytest.raises(InvalidAmount):
        topup_grant(org=org, currency="CREDIT", amount=1.5, reference="f")  # type: ignore[arg-type]
    assert not Transaction.objects.exists()
