""" "Why did my balance drop?" splits the change exactly and the parts add up to the cent."""

from __future__ import annotations

import uuid
from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from ledger.models import Account, AccountKind
from ledger.selectors_dashboard import balance_drop
from ledger.services.postings import system_account, transaction_post, wallet_for
from tests.projects.dashboard_fixtures import *  # noqa: F403
from tests.projects.dashboard_fixtures import fund, usage_add

pytestmark = pytest.mark.django_db


def _today():
    return timezone.now().astimezone(UTC).date()


def test_parts_add_up_to_the_balance_change_exactly(tenant):
    org = tenant.org
    run = uuid.uuid4()
    usage_add(org=org, project=tenant.project, api_key=tenant.key, cost="0.0000001234")
    usage_add(org=org, project=tenant.project, api_key=tenant.key, cost="1.3333333333", model="b")
    usage_add(org=org, project=tenant.project, kind="researcher", cost="0.5", researcher_run_id=run)
    fund(org, "CREDIT", "7.25")
    transaction_post(
        org=org,
        kind="adjustment",
        legs=[
            (wallet_for(org=org, currency="CREDIT"), Decimal("-0.0100000001")),
            (
                system_account(currency="CREDIT", kind=AccountKind.ADJUSTMENTS),
                Decimal("0.0100000001"),
            ),
        ],
        reference=f"adj-{uuid.uuid4()}",
    )
    drop = balance_drop(org=org, currency="CREDIT", start=_today(), end=_today())
    wallet = Account.objects.get(org=org, currency="CREDIT", kind=AccountKind.WALLET)
    assert drop.opening == Decimal("0")
    assert drop.closing == wallet.posted
    assert drop.adds_up
    parts = drop.topups + drop.adjustments + sum(u["amount"] for u in drop.usage) + drop.other
    assert parts == drop.change
    assert drop.topups == Decimal("107.25")
    assert drop.adjustments == Decimal("-0.0100000001")
    assert drop.other == Decimal("0")
    researcher = [u for u in drop.usage if u["kind"] == "researcher"]
    assert researcher[0]["researcher_run_id"] == run
    assert researcher[0]["amount"] == Decimal("-0.5")
    assert drop.usage_total == Decimal("-0.25") - Decimal("0.0000001234") - Decimal(
        "1.3333333333"
    ) - Decimal("0.5")


def test_a_range_before_any_activity_has_no_change(tenant):
    day = _today() - timedelta(days=10)
    drop = balance_drop(org=tenant.org, currency="RMB", start=day, end=day)
    assert drop.change == 0 and drop.usage == [] and drop.adds_up


def test_the_page_shows_the_check(tenant):
    url = reverse("ledger:balance_drop") + "?wallet=CREDIT"
    body = tenant.client("viewer").get(url).content.decode()
    assert 'data-adds-up="yes"' in body
    assert tenant.project.name in body
