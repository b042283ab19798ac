"""A new user in headless Chromium: sign up, create a project, create a key with a budget,
see the key exactly once; then the usage, ledger and balance pages. Screenshots go to
test-artifacts/screenshots/.

Runs a real uvicorn server (subprocess, ephemeral port) on the test database.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.db import connection

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_server_url(transactional_db):
    """uvicorn on the test database; DEBUG on so it serves the static files (Chart.js)."""
    settings = connection.settings_dict
    database_url = (
        f"postgres://{settings['USER']}@{settings['HOST'] or '127.0.0.1'}:"
        f"{settings['PORT'] or 5432}/{settings['NAME']}"
    )
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "TEST_DATABASE_URL": database_url,
        "DEBUG": "true",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "config.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail("uvicorn did not start")
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


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


def test_sign_up_create_a_project_and_a_key_with_a_budget(page, live_server_url):
    from playwright.sync_api import expect

    page.goto(live_server_url + "/")
    page.get_by_role("link", name="Sign up").first.click()
    page.get_by_label("Email").fill("walker@example.com")
    page.get_by_label("Password", exact=True).fill("a long and good password 42")
    page.get_by_label("Organization name").fill("Walkers")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_text("Credit (USD)").first).to_be_visible()
    _shot(page, "overview")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Projects").click()
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
    secret_box = page.get_by_label("Secret key")
    secret = secret_box.input_value()
    assert secret.startswith("tf-") and len(secret) >= 43
    expect(page.get_by_role("button", name="Copy key")).to_be_visible()
    _shot(page, "key-created")

    page.get_by_role("link", name="Set budgets and limits for this key").click()
    page.get_by_label("Wallet:", exact=True).select_option("CREDIT")
    page.get_by_label("Limit:", exact=True).fill("25")
    page.get_by_label("Period").select_option("month")
    page.get_by_role("button", name="Save budget").click()
    expect(page.get_by_text("Budget saved.")).to_be_visible()
    expect(page.get_by_role("progressbar")).to_have_count(1)
    assert secret not in page.content()  # shown exactly once
    _shot(page, "key-budget")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="API keys").click()
    expect(page.get_by_text("backend")).to_be_visible()
    assert secret not in page.content()
    _shot(page, "keys")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Usage").click()
    expect(page.locator("#usage-chart")).to_be_visible()
    assert page.evaluate("typeof Chart") == "function"  # served from our static files
    _shot(page, "usage")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Ledger").click()
    expect(page.get_by_role("heading", name="Ledger")).to_be_visible()
    _shot(page, "ledger")
    page.get_by_role("link", name="Why did my balance drop?").click()
    expect(page.locator("[data-adds-up='yes']")).to_be_visible()
    _shot(page, "balance-drop")
