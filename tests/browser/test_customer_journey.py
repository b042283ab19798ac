"""A paying customer's journey in headless Chromium, under both servers customers run:

- "run": like `make run` (config.settings.local, SQLite file, no Redis, DEBUG), and
- "serve": like `make serve` on PostgreSQL (the test database, Redis), DEBUG for the test provider.

Fund Credit and RMB with the test provider and with redemption codes; create a key (a reload
creates nothing and no longer shows the secret); a refused request (402 on a tiny key budget)
has its own story that says what to do; then every page at 1280 px and 390 px: no sideways
scroll at 390 px, the menu button opens the navigation. Screenshots of every page at both
widths go to test-artifacts/screenshots/ (git ignores it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from tests.browser.uvicorn_site import uvicorn_site

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
PASSWORD = "a long and good password 42"
ROUTING = """
upstreams:
  - {name: relay-rmb, provider: demo, base_url: "", wallet: RMB, timeout: 30}
  - {name: official, provider: demo, base_url: "", wallet: CREDIT, timeout: 30}
models:
  - name: gpt-4o-mini
    routes:
      - {upstream: relay-rmb, model: gpt-4o-mini, price: {input: "2", output: "8"}}
      - {upstream: official, model: gpt-4o-mini, price: {input: "0.15", output: "0.60"}}
"""
CODES = (
    "from ledger.services.redemptions import redemption_batch_create as c; import json; "
    "print(json.dumps([c(name='welcome', currency='RMB', amount='50', count=1)[1][0], "
    "c(name='welcome', currency='CREDIT', amount='5', count=1)[1][0]]))"
)


def _manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


@pytest.fixture(params=["run", "serve"])
def site(request, tmp_path, transactional_db):
    """A server like `make run` (SQLite) or `make serve` (PostgreSQL), seeded through the
    same management commands an operator uses."""
    base = {**os.environ, "DEBUG": "true", "STRIPE_SECRET_KEY": "", "STRIPE_WEBHOOK_SECRET": ""}
    if request.param == "run":
        env = {
            **base,
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'run.sqlite3'}",
            "REDIS_URL": "",
            "LEDGER_FAST_PATH": "false",
        }
        _manage(env, "migrate", "--noinput")
    else:
        db = connection.settings_dict
        env = {
            **base,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "TEST_DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}",
        }
    email = f"owner-{request.param}@example.com"
    slug = _manage(
        env, "create_tenant", "--org", "Journey Labs", "--email", email, "--password", PASSWORD
    )
    routing_file = tmp_path / "routing.yaml"
    routing_file.write_text(ROUTING)
    _manage(env, "apply_routing", str(routing_file))
    plain_key = _manage(env, "create_key", "--org", slug, "--project", "backend", "--name", "ok")
    codes = json.loads(_manage(env, "shell", "-c", CODES))
    with uvicorn_site(env) as url:
        yield {
            "kind": request.param,
            "url": url,
            "email": email,
            "codes": codes,
            "key": plain_key,
        }


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _shot(page, site, name: str, width: int) -> None:
    page.screenshot(path=str(SHOTS / f"{site['kind']}-{width}-{name}.png"), full_page=True)


def _no_sideways_scroll(page) -> None:
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1, f"{page.url} scrolls sideways by {overflow}px at 390 px"


def _nav(page, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True).click()


def test_a_customer_funds_both_wallets_and_reads_a_refusal_on_every_screen(site, browser):
    import openai
    from playwright.sync_api import expect

    url = site["url"]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(url + "/accounts/login/")
    page.get_by_label("Email").fill(site["email"])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    header_height = page.locator("header.topbar").bounding_box()["height"]
    assert header_height < 60, f"the 1280 px header wraps ({header_height}px)"

    # Credit by the test provider; a reload of the page after paying adds nothing.
    _nav(page, "Top up")
    credit_form = page.locator("[data-topup-form='CREDIT']")
    credit_form.get_by_label("Amount").fill("20")
    credit_form.get_by_role("button", name="Continue to test payment").click()
    page.get_by_role("button", name="Pay (test)").click()
    expect(page.get_by_text("$20.00 added to your Credit (USD) wallet")).to_be_visible()
    page.reload()
    credit = page.locator(".wallet[data-wallet='CREDIT'] [data-available]")
    expect(credit).to_have_text("$20.00")

    # RMB by the test provider (Alipay / WeChat Pay stand-in), then a cancelled one.
    rmb_form = page.locator("[data-topup-form='RMB']")
    rmb_form.get_by_label("Amount").fill("30")
    rmb_form.get_by_role("button", name="Continue to test payment").click()
    expect(page.get_by_text("Alipay / WeChat Pay (test)")).to_be_visible()
    page.get_by_role("button", name="Pay (test)").click()
    expect(page.get_by_text("¥30.00 added to your RMB (CNY) wallet")).to_be_visible()
    rmb_form = page.locator("[data-topup-form='RMB']")
    rmb_form.get_by_label("Amount").fill("8")
    rmb_form.get_by_role("button", name="Continue to test payment").click()
    page.get_by_role("button", name="Cancel payment").click()
    expect(page.get_by_text("Test payment cancelled")).to_be_visible()

    # Redemption codes for both wallets.
    for code in site["codes"]:
        page.get_by_label("Code", exact=True).fill(code)
        page.get_by_role("button", name="Redeem").click()
        expect(page.get_by_text("Code redeemed")).to_be_visible()
    expect(page.locator(".wallet[data-wallet='RMB'] [data-available]")).to_have_text("¥80.00")
    expect(credit).to_have_text("$25.00")
    history = page.locator("#topup-history tbody tr")
    expect(history).to_have_count(5)  # 2 test payments, 1 cancelled, 2 codes
    page.reload()
    expect(history).to_have_count(5)
    expect(page.locator("#topup-history")).to_contain_text("Cancelled")
    page.locator("#topup-history").get_by_role("link", name="R-0001").click()
    expect(page.get_by_role("heading", name="Receipt R-0001")).to_be_visible()
    expect(page.locator("#receipt")).to_contain_text("Journey Labs")
    receipt_url = page.url

    # A key with a tiny RMB budget: created once, the secret shown once.
    _nav(page, "API keys")
    page.get_by_role("link", name="Create an API key").first.click()
    page.get_by_label("Project").select_option(label="backend")
    page.get_by_label("Name").fill("tiny")
    page.get_by_label("Allowed wallets and order").select_option("RMB")
    page.get_by_label("Budget", exact=True).fill("0.001")
    page.get_by_label("Budget wallet").select_option("RMB")
    page.get_by_label("Budget period").select_option("total")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_label("Secret key").input_value()
    assert secret.startswith("tf-")
    page.reload()
    expect(page.get_by_text("was shown once, when it was created")).to_be_visible()
    assert secret not in page.content()
    _nav(page, "API keys")
    expect(page.get_by_text("tiny")).to_have_count(1)

    # One request that runs, one that is refused by the key's budget.
    ok = openai.OpenAI(base_url=url + "/v1", api_key=site["key"], max_retries=0)
    ok.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    tiny = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
    with pytest.raises(openai.APIStatusError) as refused:
        tiny.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
        )
    assert refused.value.status_code == 402
    message = refused.value.body["message"]
    assert 'the key "tiny"' in message and "is left" in message and "needed to hold" in message
    assert not re.search(r"budget \d", message)
    request_id = refused.value.response.headers["x-request-id"]

    _nav(page, "Ledger")
    page.locator(f"a[href*='{request_id}']").first.click()
    expect(page.get_by_role("heading", name=f"Request {request_id}")).to_be_visible()
    expect(page.locator("body")).to_contain_text("Failed")
    expect(page.locator("#skipped-routes")).to_contain_text("budget")
    expect(page.locator("body")).to_contain_text('the key "tiny"')
    story_url = page.url

    # Every page, at both widths.
    pages = {
        "overview": url + "/dashboard/",
        "projects": url + "/dashboard/projects/",
        "keys": url + "/dashboard/keys/",
        "models": url + "/dashboard/models/",
        "usage": url + "/dashboard/usage/",
        "ledger": url + "/dashboard/ledger/",
        "request-story": story_url,
        "topup": url + "/dashboard/topup/",
        "receipt": receipt_url,
        "members": url + "/dashboard/members/",
        "audit-log": url + "/dashboard/audit/",
        "key-form": url + "/dashboard/keys/new/",
        "balance-drop": url + "/dashboard/ledger/balance/",
    }
    for name, address in pages.items():
        page.goto(address)
        _shot(page, site, name, 1280)
    page.set_viewport_size({"width": 390, "height": 844})
    for name, address in pages.items():
        page.goto(address)
        _no_sideways_scroll(page)
        _shot(page, site, name, 390)
    page.goto(pages["overview"])
    menu = page.get_by_role("button", name="Menu")
    expect(menu).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    menu.click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    _no_sideways_scroll(page)
    _shot(page, site, "menu-open", 390)
    context.close()
