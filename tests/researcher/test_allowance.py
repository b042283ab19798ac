"""The free monthly researcher allowance: funded from the promotions account, spent before
the organization's wallet, once per month; never used by API traffic; reconcile passes."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import override_settings

from ledger.models import Account, AccountKind, Posting, Transaction, UsageRecord
from ledger.services.allowance import allowance_refresh
from researcher.execution import run_execute
from researcher.models import ResearchStep
from researcher.services import run_create
from routing.errors import GatewayError
from tests.researcher.conftest import (
    api_call,
    assert_reconciled,
    make_tenant,
    member_client,
    research_routes,
    run_body,
    wallet,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _allowance(org) -> Account:
    return Account.objects.get(org=org, currency="CREDIT", kind=AccountKind.ALLOWANCE)


@pytest.mark.parametrize("fast_path", [True, False], ids=["statement", "orm"])
def test_the_allowance_pays_for_steps_before_the_wallet(upstream, settings, fast_path):
    # One way of overriding settings per test: mixing override_settings with the `settings`
    # fixture would leak the allowance into later tests.
    settings.LEDGER_FAST_PATH = fast_path
    settings.RESEARCHER_MONTHLY_ALLOWANCE = {"CREDIT": "5"}
    t = make_tenant()
    research_routes(upstream.base_url)
    before = wallet(t.org).posted
    run, _ = run_create(org_id=t.org.pk, project_id=t.project.pk, data=run_body(), enqueue=False)
    assert run_execute(run_id=run.pk) == "succeeded"
    run.refresh_from_db()
    steps = list(ResearchStep.objects.filter(run=run))
    assert {s.paid_by for s in steps} == {"allowance"}
    assert wallet(t.org).posted == before  # the wallet paid nothing
    assert _allowance(t.org).posted == Decimal("5") - run.spent
    grant = Transaction.objects.get(kind="allowance", org=t.org)
    promotions = Posting.objects.get(transaction=grant, account__kind=AccountKind.PROMOTIONS)
    assert promotions.amount == Decimal("-5")
    page = member_client(t.org).get("/dashboard/researcher/").content.decode()
    assert "Free researcher allowance left this month" in page
    api_id = api_call(t)  # API traffic never touches the allowance
    assert wallet(t.org).posted == before - UsageRecord.objects.get(request_id=api_id).cost
    assert_reconciled()


@override_settings(RESEARCHER_MONTHLY_ALLOWANCE={"CREDIT": "0.03"})
def test_when_the_allowance_runs_short_the_wallet_pays_the_rest(upstream):
    t = make_tenant()
    research_routes(upstream.base_url, price={"input": "10", "output": "20"})
    upstream.prompt_tokens, upstream.completion_tokens = 500, 300  # 0.011 a step
    before = wallet(t.org).posted
    run, _ = run_create(org_id=t.org.pk, project_id=t.project.pk, data=run_body(), enqueue=False)
    assert run_execute(run_id=run.pk) == "succeeded"
    run.refresh_from_db()
    paid = {s.paid_by for s in ResearchStep.objects.filter(run=run)}
    assert paid == {"allowance", "wallet"}
    from_wallet = sum(
        (s.cost for s in ResearchStep.objects.filter(run=run, paid_by="wallet")), Decimal(0)
    )
    assert before - wallet(t.org).posted == from_wallet > 0
    assert_reconciled()


@override_settings(RESEARCHER_MONTHLY_ALLOWANCE={"CREDIT": "1"})
def test_an_empty_wallet_can_still_research_on_the_allowance_once_a_month(upstream):
    t = make_tenant(credit="0")
    research_routes(upstream.base_url, price={"input": "1", "output": "2"})
    run, _ = run_create(
        org_id=t.org.pk,
        project_id=t.project.pk,
        data=run_body(budget={"currency": "CREDIT", "amount": "0.5"}),
        enqueue=False,
    )
    assert run_execute(run_id=run.pk) == "succeeded"
    allowance_refresh(org_id=t.org.pk, currency="CREDIT")  # same month: nothing more
    assert Transaction.objects.filter(kind="allowance", org=t.org).count() == 1
    with pytest.raises(GatewayError):
        api_call(t)  # the wallet is empty and API traffic may not use the allowance
    assert_reconciled()
