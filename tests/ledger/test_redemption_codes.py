"""Redemption codes: generated once and hashed, redeemed once, refused when used or expired."""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from ledger.errors import InvalidAmount
from ledger.models import RedemptionBatch, RedemptionCode, TopUp, TopUpProvider, Transaction
from ledger.services.redemptions import (
    RedemptionRefused,
    redemption_batch_create,
    redemption_redeem,
)
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.ledger.topup_helpers import assert_wallets_consistent, posted

pytestmark = pytest.mark.django_db

CODE_RE = re.compile(r"^TF-[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}$")


def test_a_batch_returns_plain_codes_once_and_stores_only_hashes(db):
    batch, codes = redemption_batch_create(name="Promo", currency="RMB", amount="50", count=5)
    assert len(set(codes)) == 5 and all(CODE_RE.match(c) for c in codes)
    stored = list(RedemptionCode.objects.filter(batch=batch).values_list("code_hash", flat=True))
    assert len(stored) == 5
    assert not any(code in stored for code in codes)
    assert batch.amount == Decimal("50") and batch.count == 5


def test_redeeming_credits_the_wallet_once(org, owner):
    _, [code] = redemption_batch_create(name="One", currency="RMB", amount="88.8", count=1)
    txn = redemption_redeem(org=org, code=code.lower().replace("-", " "), actor=owner)
    assert posted(org, "RMB") == Decimal("88.8")
    assert txn.topup.provider == TopUpProvider.REDEMPTION
    with pytest.raises(RedemptionRefused, match="already been redeemed") as refused:
        redemption_redeem(org=org, code=code, actor=owner)
    assert refused.value.reason == "used"
    assert posted(org, "RMB") == Decimal("88.8")
    row = RedemptionCode.objects.get()
    assert row.redeemed_by_org == org and row.transaction == txn
    assert_wallets_consistent()


def test_expired_and_unknown_codes_are_refused(org, owner):
    _, [code] = redemption_batch_create(
        name="Old",
        currency="CREDIT",
        amount="5",
        count=1,
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    with pytest.raises(RedemptionRefused, match="expired"):
        redemption_redeem(org=org, code=code, actor=owner)
    with pytest.raises(RedemptionRefused, match="not valid"):
        redemption_redeem(org=org, code="TF-AAAA-BBBB-CCCC-DDDD", actor=owner)
    assert not Transaction.objects.exists()
    assert RedemptionCode.objects.get().redeemed_at is None


def test_bad_batches_are_refused(db):
    with pytest.raises(ValueError):
        redemption_batch_create(name="x", currency="EUR", amount="1", count=1)
    with pytest.raises(ValueError):
        redemption_batch_create(name="x", currency="RMB", amount="1", count=0)
    with pytest.raises(InvalidAmount):
        redemption_batch_create(name="x", currency="RMB", amount="-1", count=1)
    assert not RedemptionBatch.objects.exists()


def test_the_page_redeems_and_explains_refusals(client, org):
    user = MembershipFactory(org=org, role=Role.ADMIN).user
    client.force_login(user)
    _, [code] = redemption_batch_create(name="Page", currency="RMB", amount="10", count=1)
    html = client.get(reverse("ledger:topup")).content.decode()
    assert '<label for="id_code">Code</label>' in html and ">Redeem</button>" in html

    ok = client.post(reverse("ledger:topup_redeem"), {"code": code}, follow=True)
    assert "Code redeemed: ¥10.00 added to your RMB (CNY) wallet." in ok.content.decode()
    again = client.post(reverse("ledger:topup_redeem"), {"code": code})
    assert again.status_code == 400
    assert "already been redeemed" in again.content.decode()
    unknown = client.post(reverse("ledger:topup_redeem"), {"code": "nope"})
    assert "not valid" in unknown.content.decode()
    assert posted(org, "RMB") == Decimal("10")
    assert_wallets_consistent()


def test_admin_generates_a_batch_and_shows_the_codes_once(client):
    admin = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin)
    response = client.post(
        reverse("admin:ledger_redemptionbatch_add"),
        {"name": "Launch", "currency": "RMB", "amount": "20", "count": "3"},
    )
    assert response.status_code == 200
    html = response.content.decode()
    codes = re.findall(r"TF-[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}", html)
    assert len(set(codes)) == 3
    assert "shown only once" in html and "Download CSV" in html and "data:text/csv" in html
    assert RedemptionCode.objects.count() == 3
    org = OrganizationFactory()
    redemption_redeem(org=org, code=codes[0], actor=None)
    assert posted(org, "RMB") == Decimal("20")
    assert client.get(reverse("admin:ledger_redemptionbatch_changelist")).status_code == 200
    assert client.get(reverse("admin:ledger_redemptioncode_changelist")).status_code == 200
    assert client.get(reverse("admin:ledger_webhookevent_changelist")).status_code == 200


def test_admin_grant_is_idempotent(client, org):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    data = {"org": org.pk, "currency": "CREDIT", "amount": "7", "reference": "adm-1", "reason": "x"}
    for _ in range(2):
        response = client.post(reverse("admin:ledger_topup_add"), data)
        assert response.status_code == 302
    assert posted(org, "CREDIT") == Decimal("7")
    assert TopUp.objects.filter(provider=TopUpProvider.OPERATOR).count() == 1
    assert client.get(reverse("admin:ledger_topup_changelist")).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_one_code_redeemed_by_many_threads_at_once_credits_once():
    orgs = [OrganizationFactory() for _ in range(3)]
    _, [code] = redemption_batch_create(name="Race", currency="CREDIT", amount="25", count=1)
    attempts = 8
    barrier = threading.Barrier(attempts)
    outcomes: list[str] = []

    def redeem(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            redemption_redeem(org=orgs[i % len(orgs)], code=code, actor=None)
            outcomes.append("ok")
        except RedemptionRefused as exc:
            outcomes.append(exc.reason)
        except BaseException as exc:  # noqa: BLE001 - any other error fails the test
            outcomes.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=redeem, args=(i,)) for i in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["ok"] + ["used"] * (attempts - 1), outcomes
    assert sum(posted(o, "CREDIT") for o in orgs) == Decimal("25")
    assert Transaction.objects.filter(kind="redemption").count() == 1
    assert_wallets_consistent()
