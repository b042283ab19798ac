"""An operator in headless Chromium: log into /admin/, look at the wallets, filter usage
records, read the operator overview, and post a compensating adjustment with a reason.
Screenshots go to test-artifacts/screenshots/admin-*.png."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from ledger.models import Transaction, TransactionKind
from ledger.services.holds import hold_capture, hold_place
from ledger.services.reconcile import reconcile
from projects.services import key_create
from tests.browser.test_dashboard_walkthrough import SHOTS, live_server_url, page  # noqa: F401
from tests.factories import OrganizationFactory, ProjectFactory, UserFactory
from tests.ledger.ledger_helpers import fund, wallet

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "operator password 42"


def _shot(page, name: str) -> None:  # noqa: F811 - `page` is the fixture's value here
    page.screenshot(path=str(SHOTS / f"admin-{name}.png"), full_page=True)


def _traffic():
    org = OrganizationFactory(name="Acme Research", slug="acme")
    project = ProjectFactory(org=org, name="prod")
    api_key = key_create(project=project, name="main").api_key
    fund(org, "CREDIT", "50")
    for model, upstream in [("gpt-4o", "relay-a"), ("gpt-4o", "relay-a"), ("claude", "relay-b")]:
        hold = hold_place(
            org_id=org.pk, currency="CREDIT", amount=Decimal("2"), project_id=project.pk
        )
        hold_capture(
            hold_id=hold.pk,
            amount=Decimal("1.5"),
            usage={
                "request_id": f"req_{uuid.uuid4().hex[:12]}",
                "project_id": project.pk,
                "api_key_id": api_key.pk,
                "model": model,
                "upstream": upstream,
                "upstream_model": model,
                "attempts": [{"upstream": upstream, "model": model, "status": "ok", "error": ""}],
                "wallet": "CREDIT",
                "prompt_tokens": 500_000,
                "price_input": Decimal("2"),
                "price_output": Decimal("2"),
                "price_cached_input": Decimal("2"),
                "price_multiplier": Decimal("1.5"),
            },
        )
    other = OrganizationFactory(name="Other", slug="other")
    fund(other, "CREDIT", "5")
    return org


def test_an_operator_reviews_wallets_usage_and_the_overview_and_posts_an_adjustment(
    page,  # noqa: F811
    live_server_url,  # noqa: F811
    monkeypatch,
):
    from playwright.sync_api import expect

    # Playwright's sync API runs an event loop in this thread; our ORM calls here are still
    # plain blocking calls between browser steps, never inside a coroutine.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    org = _traffic()
    operator = UserFactory(email="ops@example.com", is_staff=True, is_superuser=True)
    operator.set_password(PASSWORD)
    operator.save()

    page.goto(live_server_url + "/admin/")
    page.locator("#id_username").fill("ops@example.com")
    page.locator("#id_password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name="Operator overview")).to_be_visible()
    _shot(page, "index")

    # Wallets: both of acme's, read-only.
    page.goto(live_server_url + "/admin/ledger/account/?kind__exact=wallet")
    page.get_by_label("Organization (slug or id)").fill("acme")
    page.get_by_label("Organization (slug or id)").press("Enter")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(2)
    expect(page.get_by_role("link", name="Add account")).to_have_count(0)
    _shot(page, "wallets")

    # Usage records filtered by model.
    page.goto(live_server_url + "/admin/ledger/usagerecord/")
    expect(page.locator("#result_list tbody tr")).to_have_count(3)
    page.get_by_label("Model").fill("claude")
    page.get_by_label("Model").press("Enter")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#result_list")).to_contain_text("relay-b")
    _shot(page, "usage-filtered")

    # The operator overview: 4.50 revenue, 3.00 upstream cost, 1.50 margin in Credit.
    page.get_by_role("link", name="Home").click()
    page.get_by_role("link", name="Operator overview").click()
    expect(page.get_by_role("heading", name="Operator overview")).to_be_visible()
    wallets = page.locator("#overview-wallets")
    expect(wallets).to_contain_text("4.5000")
    expect(wallets).to_contain_text("3.0000")
    expect(wallets).to_contain_text("1.5000")
    expect(page.locator("#overview-orgs")).to_contain_text("Acme Research")
    _shot(page, "overview")

    # A compensating adjustment on acme's Credit wallet, with a reason.
    page.goto(live_server_url + "/admin/ledger/account/?org=acme&currency__exact=CREDIT")
    page.locator("#result_list tbody tr input.action-select").check()
    page.locator("select[name=action]").select_option("post_adjustment")
    page.get_by_role("button", name="Go").click()
    expect(page.get_by_text("Ledger rows are never changed")).to_be_visible()
    page.get_by_label("Amount").fill("2.50")
    page.get_by_label("Reason").fill("Goodwill credit after the relay-b outage")
    _shot(page, "adjustment-form")
    page.get_by_role("button", name="Post correction").click()
    expect(page.get_by_text("Posted adjustment")).to_be_visible()
    _shot(page, "adjustment-posted")

    adjustment = Transaction.objects.get(kind=TransactionKind.ADJUSTMENT)
    assert adjustment.reason == "Goodwill credit after the relay-b outage"
    assert adjustment.created_by == operator
    assert wallet(org).posted == Decimal("50") - Decimal("4.5") + Decimal("2.5")
    assert reconcile().ok
