"""Issue 6's walk, in headless Chromium, for a new user: sign up, top up with the test
provider, redeem a code, create a project and a key with a budget, call the proxy with that
key (the official openai SDK, from the test), find the request in the ledger with its route
and wallet, open its story, check the balance-drop view adds up, export CSV. Screenshots of
the main pages go to test-artifacts/screenshots/ (git ignores it).

Runs a real uvicorn server (subprocess, ephemeral port) on the test database; the upstream is
the built-in demo provider, so no network is needed.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection

from tests.browser.uvicorn_site import uvicorn_site

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def live_server_url(transactional_db):
    """uvicorn on the test database; DEBUG on so it serves the static files (Chart.js)."""
    settings = connection.settings_dict
    database_url = (
        f"postgres://{settings['USER']}@{settings['HOST'] or '127.0.0.1'}:"
        f"{settings['PORT'] or 5432}/{settings['NAME']}"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "TEST_DATABASE_URL": database_url,
        "DEBUG": "true",
    }
    with uvicorn_site(env) as url:
        yield url


@pytest.fixture
def page(live_server_url):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        yield context.new_page()
        context.close()
        browser.close()


def _shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"dashboard-{name}.png"), full_page=True)


ROUTING = {
    "upstreams": [
        {"name": "walk-relay", "provider": "demo", "base_url": "", "wallet": "RMB", "timeout": 30},
        {"name": "walk-official", "provider": "demo", "base_url": "", "wallet": "CREDIT"},
    ],
    "models": [
        {
            "name": "gpt-4o-mini",
            "routes": [
                {
                    "upstream": "walk-relay",
                    "model": "gpt-4o-mini",
                    "price": {"input": "1.05", "output": "4.20"},
                },
                {
                    "upstream": "walk-official",
                    "model": "gpt-4o-mini",
                    "price": {"input": "0.15", "output": "0.60"},
                },
            ],
        }
    ],
}


@pytest.fixture
def operator_code(transactional_db):
    """Demo routes, and one RMB redemption code an operator handed to the new customer."""
    from ledger.services.redemptions import redemption_batch_create
    from routing.services import routing_apply

    routing_apply(data=ROUTING, env={})
    _, codes = redemption_batch_create(name="welcome", currency="RMB", amount="50", count=1)
    return codes[0]


def _nav(page, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True).click()


def test_a_new_user_tops_up_spends_through_the_proxy_and_traces_every_cent(
    operator_code, live_server_url, page
):
    """`operator_code` comes first: it writes to the database before Playwright's loop runs."""
    import openai
    from openai import OpenAI
    from playwright.sync_api import expect

    page.on("dialog", lambda dialog: dialog.accept())  # confirmations (revoke) say yes
    # Sign up.
    page.goto(live_server_url + "/")
    page.get_by_role("link", name="Sign up").first.click()
    page.get_by_label("Email").fill("walker@example.com")
    page.get_by_label("Password", exact=True).fill("a long and good password 42")
    page.get_by_label("Organization name").fill("Walkers")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_text("Credit (USD)").first).to_be_visible()
    nav = page.get_by_role("navigation", name="Main")
    for name in ("Overview", "Projects", "API keys", "Usage", "Ledger", "Top up", "Members"):
        expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()

    # Top up Credit with the test provider.
    _nav(page, "Top up")
    credit_form = page.locator("[data-topup-form='CREDIT']")
    credit_form.get_by_label("Amount").fill("20")
    credit_form.get_by_role("button", name="Continue to test payment").click()
    expect(page.get_by_role("heading", name="Test payment — no real money")).to_be_visible()
    page.get_by_role("button", name="Pay (test)").click()
    expect(
        page.get_by_text("Test payment done: $20.00 added to your Credit (USD) wallet.")
    ).to_be_visible()
    credit = page.locator(".wallet[data-wallet='CREDIT'] [data-available]")
    expect(credit).to_contain_text("$20.00")

    # Redeem the operator's code (RMB).
    page.get_by_label("Code", exact=True).fill(operator_code)
    page.get_by_role("button", name="Redeem").click()
    expect(
        page.get_by_text("Code redeemed: ¥50.00 added to your RMB (CNY) wallet.")
    ).to_be_visible()
    rmb = page.locator(".wallet[data-wallet='RMB'] [data-available]")
    expect(rmb).to_contain_text("¥50.00")
    history = page.locator("section", has=page.get_by_role("heading", name="Top-up history"))
    expect(history.get_by_role("row")).to_have_count(3)  # header, card payment, code
    _shot(page, "topup")

    # A project, and a key with a budget.
    _nav(page, "Projects")
    page.get_by_label("Name").fill("chatbot")
    page.get_by_label("Environment").select_option("staging")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name="Project chatbot")).to_be_visible()
    _shot(page, "project")

    page.get_by_role("link", name="Create an API key").click()
    page.get_by_label("Name").fill("backend")
    page.get_by_label("Allowed models").fill("gpt-4o-mini")
    page.get_by_label("Allowed wallets and order").select_option("RMB,CREDIT")
    page.get_by_label("Requests per minute (RPM)").fill("120")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_label("Secret key").input_value()
    assert secret.startswith("tf-") and len(secret) >= 43
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server_url)
    page.get_by_role("button", name="Copy key").click()
    expect(page.get_by_text("Copied.")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    _shot(page, "key-created")

    page.get_by_role("link", name="Budgets and limits of this key").click()
    page.get_by_label("Wallet", exact=True).select_option("RMB")
    page.get_by_label("Limit", exact=True).fill("25")
    page.get_by_label("Period").select_option("month")
    page.get_by_role("button", name="Save budget").click()
    expect(page.get_by_text("Budget saved.")).to_be_visible()
    expect(page.get_by_role("progressbar")).to_have_count(1)
    assert secret not in page.content()  # shown exactly once
    key_page = page.url
    _shot(page, "key-budget")

    _nav(page, "API keys")
    expect(page.get_by_text("backend")).to_be_visible()
    assert secret not in page.content()
    _shot(page, "keys")

    # Call the proxy with that key, as a customer would.
    client = OpenAI(base_url=live_server_url + "/v1", api_key=secret, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello from the walk"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    request_id = raw.headers["x-request-id"]
    assert raw.headers["x-tokenforge-route"] == "walk-relay/gpt-4o-mini"
    assert raw.headers["x-tokenforge-wallet"] == "RMB"
    cost = format(Decimal(raw.headers["x-tokenforge-cost"]).normalize(), "f")  # as pages show it
    assert Decimal(cost) > 0

    # The key's budget shows the spend.
    page.goto(key_page)
    expect(page.get_by_role("row").filter(has=page.get_by_role("progressbar"))).to_contain_text(
        cost
    )

    # Overview and usage now show it.
    _nav(page, "Overview")
    expect(page.get_by_role("link", name="chatbot")).to_be_visible()
    _shot(page, "overview")
    _nav(page, "Usage")
    expect(page.locator("#usage-chart")).to_be_visible()
    page.wait_for_function("typeof Chart === 'function'")  # served from our static files
    page.get_by_label("Chart wallet").select_option("RMB")
    page.get_by_role("button", name="Show usage").click()
    expect(page.get_by_text("walk-relay · gpt-4o-mini")).to_be_visible()
    page.wait_for_function("Chart.getChart('usage-chart') !== undefined")  # drawn, with data:
    assert page.evaluate("Chart.getChart('usage-chart').data.datasets[0].label") == "gpt-4o-mini"
    _shot(page, "usage")

    # Find the request in the ledger, with its route and wallet.
    _nav(page, "Ledger")
    expect(page.get_by_role("heading", name="Ledger")).to_be_visible()
    page.get_by_label("Wallet").select_option("RMB")
    page.get_by_role("button", name="Filter").click()
    row = page.get_by_role("row").filter(has=page.locator(f"a[href*='{request_id}']"))
    expect(row).to_have_count(1)
    expect(row).to_contain_text("walk-relay")
    expect(row).to_contain_text("RMB")
    expect(row).to_contain_text("Settled")
    _shot(page, "ledger")

    # Its story: what was asked, the route that ran, attempts, prices, cost, the transaction.
    row.get_by_role("link").first.click()
    expect(page.get_by_role("heading", name=f"Request {request_id}")).to_be_visible()
    route = page.locator("section, div").filter(
        has=page.get_by_role("heading", name="Route that ran")
    )
    expect(route.last).to_contain_text("walk-relay")
    expect(route.last).to_contain_text("RMB")
    expect(page.get_by_role("heading", name="Attempts")).to_be_visible()
    expect(page.get_by_text(f"Cost {cost} RMB")).to_be_visible()
    expect(page.get_by_role("link", name="Transaction #")).to_be_visible()
    _shot(page, "request-story")

    # Why did my balance drop? The parts add up to the change, to the cent and beyond.
    _nav(page, "Ledger")
    page.get_by_role("link", name="Why did my balance drop?").click()
    page.get_by_label("Wallet").select_option("RMB")
    page.get_by_role("button", name="Explain").click()
    expect(page.locator("[data-adds-up='yes']")).to_be_visible()
    assert page.locator("[data-parts]").inner_text() == page.locator("[data-change]").inner_text()
    expect(page.get_by_role("row").filter(has_text="model gpt-4o-mini")).to_contain_text(
        f"-¥{cost}"
    )
    _shot(page, "balance-drop")

    # Export the filtered list as CSV.
    _nav(page, "Ledger")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    csv_text = Path(download.value.path()).read_text(encoding="utf-8")
    lines = csv_text.splitlines()
    assert lines[0].startswith("created_at,request_id,")
    ours = [line for line in lines if request_id in line]
    assert len(ours) == 1 and "walk-relay" in ours[0] and ",RMB," in ours[0]

    # The owner's audit log holds what they changed.
    _nav(page, "Audit log")
    expect(page.locator("[data-action='key.create']")).to_have_count(1)
    expect(page.locator("[data-action='budget.create']")).to_have_count(1)
    expect(page.locator("[data-action='redemption.redeem']")).to_have_count(1)
    _shot(page, "audit-log")
    _nav(page, "Members")
    expect(page.get_by_role("heading", name="Members of Walkers")).to_be_visible()
    _shot(page, "members")

    # Revoking the key in the dashboard stops it at once, in the already-running server.
    page.goto(key_page)
    page.get_by_role("button", name="Revoke key").click()
    expect(page.get_by_text("revoked; it stops working now")).to_be_visible()
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Still there?"}]
        )
