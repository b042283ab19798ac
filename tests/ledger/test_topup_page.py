"""The Top up page: balances, forms by role, history, and the DEBUG-only test provider."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.models import Role
from ledger.models import TopUp, TopUpProvider, TopUpStatus, Transaction
from ledger.services.topups import topup_grant
from tests.factories import MembershipFactory
from tests.ledger.topup_helpers import assert_wallets_consistent, posted

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_stripe(settings):
    settings.STRIPE_SECRET_KEY = ""
    settings.STRIPE_WEBHOOK_SECRET = ""
    return settings


def _login(client, org, role=Role.OWNER):
    user = MembershipFactory(org=org, role=role).user
    client.force_login(user)
    return user


def test_the_test_provider_tops_up_end_to_end(client, org, no_stripe):
    no_stripe.DEBUG = True
    _login(client, org)
    page = client.get(reverse("ledger:topup"))
    assert page.status_code == 200
    html = page.content.decode()
    assert '<label for="id_amount">Amount</label>' in html
    assert "Credit" in html and "Redeem a code" in html

    started = client.post(reverse("ledger:topup_checkout"), {"amount": "20"})
    topup = TopUp.objects.get(org=org)
    assert started.status_code == 302
    assert started["Location"] == reverse("ledger:topup_test_pay", args=[topup.pk])

    pay_page = client.get(started["Location"])
    assert "Test payment — no real money" in pay_page.content.decode()
    assert "Pay (test)" in pay_page.content.decode()
    assert posted(org, "CREDIT") == 0

    paid = client.post(started["Location"], follow=True)
    assert paid.status_code == 200
    assert posted(org, "CREDIT") == Decimal("20")
    client.post(started["Location"])  # paying twice credits once
    assert posted(org, "CREDIT") == Decimal("20")
    topup.refresh_from_db()
    assert (topup.provider, topup.status) == (TopUpProvider.TEST, TopUpStatus.PAID)
    assert Transaction.objects.filter(reference=f"test:{topup.pk}").count() == 1
    assert "Test provider" in client.get(reverse("ledger:topup")).content.decode()
    assert_wallets_consistent()


def test_without_stripe_and_without_debug_card_top_up_is_unavailable(client, org, no_stripe):
    no_stripe.DEBUG = False
    _login(client, org)
    html = client.get(reverse("ledger:topup")).content.decode()
    assert "Credit card top-up is unavailable" in html
    assert "Redeem a code" in html
    response = client.post(reverse("ledger:topup_checkout"), {"amount": "20"})
    assert response.status_code == 302
    assert not TopUp.objects.exists()


def test_the_test_payment_page_is_gone_when_debug_is_off(client, org, no_stripe):
    no_stripe.DEBUG = True
    _login(client, org)
    client.post(reverse("ledger:topup_checkout"), {"amount": "20"})
    topup = TopUp.objects.get(org=org)
    no_stripe.DEBUG = False
    assert client.post(reverse("ledger:topup_test_pay", args=[topup.pk])).status_code == 404
    assert posted(org, "CREDIT") == 0


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_members_and_viewers_see_history_but_cannot_top_up(client, org, no_stripe, role):
    no_stripe.DEBUG = True
    topup_grant(org=org, currency="RMB", amount=Decimal("3"), reference="hist")
    _login(client, org, role)
    html = client.get(reverse("ledger:topup")).content.decode()
    assert "Granted by tokenforge" in html and "Top-up history" in html
    assert 'name="amount"' not in html and 'name="code"' not in html
    assert client.post(reverse("ledger:topup_checkout"), {"amount": "20"}).status_code == 403
    assert client.post(reverse("ledger:topup_redeem"), {"code": "TF-X"}).status_code == 403
    assert not TopUp.objects.filter(provider=TopUpProvider.TEST).exists()


def test_the_page_needs_a_login(client):
    response = client.get(reverse("ledger:topup"))
    assert response.status_code == 302 and "login" in response["Location"]


def test_another_orgs_test_payment_is_not_found(client, org, no_stripe):
    from tests.factories import OrganizationFactory

    no_stripe.DEBUG = True
    other = OrganizationFactory()
    foreign = TopUp.objects.create(
        org=other, currency="CREDIT", amount=Decimal("5"), provider=TopUpProvider.TEST
    )
    _login(client, org)
    assert client.post(reverse("ledger:topup_test_pay", args=[foreign.pk])).status_code == 404
    assert posted(other, "CREDIT") == 0
