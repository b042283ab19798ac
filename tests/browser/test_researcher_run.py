"""In Chromium: a member opens the Researcher page from the navigation, sees the live
estimate, starts a run, watches the run page until the run ends (a real Celery worker runs
it, the demo upstream answers), and sees the report, the figures and the price chart."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.db import connection

from tests.browser.uvicorn_site import uvicorn_site
from tests.researcher.conftest import QUEUE, worker_start
from tests.researcher.demo_data import DEMO_CSV

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
PASSWORD = "a long and good password 42"


@pytest.fixture
def member(transactional_db):
    from accounts.models import Role, User
    from ledger.services.postings import wallets_open
    from projects.services import project_get_or_create
    from routing.services import routing_apply
    from tests.factories import MembershipFactory, OrganizationFactory
    from tests.routing.conftest import grant

    routing_apply(
        data={
            "upstreams": [{"name": "demo", "provider": "demo", "base_url": "", "wallet": "CREDIT"}],
            "models": [
                {
                    "name": "demo-gpt",
                    "routes": [
                        {
                            "upstream": "demo",
                            "model": "demo-gpt",
                            "price": {"input": "2", "output": "8"},
                        }
                    ],
                }
            ],
        },
        env={},
    )
    org = OrganizationFactory(name="Quant desk")
    wallets_open(org=org)
    grant(org, "CREDIT", "20")
    project_get_or_create(org=org, name="research")
    user = User.objects.create_user(email="analyst@example.com", password=PASSWORD)
    MembershipFactory(user=user, org=org, role=Role.MEMBER)
    return user


@pytest.fixture
def site(member):
    from celery import Celery
    from django.conf import settings

    Celery("purge", broker=settings.REDIS_URL).connection_for_write().default_channel.queue_purge(
        QUEUE
    )
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.researcher.worker_settings",
        "TEST_DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "DEBUG": "true",
        "RESEARCHER_LEASE_SECONDS": "30",
    }
    worker = worker_start(RESEARCHER_LEASE_SECONDS="30")
    try:
        with uvicorn_site(env) as url:
            yield url
    finally:
        worker.stop()


def test_a_member_starts_a_run_watches_it_finish_and_reads_the_report(site):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import expect, sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        page.goto(site + "/accounts/login/")
        page.get_by_label("Email").fill("analyst@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        nav = page.get_by_role("navigation", name="Main")
        nav.get_by_role("link", name="Researcher", exact=True).click()
        expect(page.get_by_role("heading", name="Start a run")).to_be_visible()

        page.get_by_label("Question").fill("Is NVDA's momentum holding after earnings?")
        page.get_by_label("Tickers").fill("NVDA")
        page.get_by_label("Depth").select_option("quick")
        page.get_by_label("Budget amount").fill("2")
        page.get_by_label("Price history (CSV)").fill(DEMO_CSV)
        expect(page.locator("#run-estimate")).to_contain_text("CREDIT", timeout=15000)
        expect(page.locator("#run-estimate")).to_contain_text("Estimate:")
        page.screenshot(path=str(SHOTS / "researcher-start.png"), full_page=True)
        page.get_by_role("button", name="Start run").click()

        expect(page.get_by_role("heading", name="Steps")).to_be_visible()
        expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=90000)
        report = page.locator("#run-report")
        expect(report).to_contain_text("Research report")
        expect(report).to_contain_text("RSI (14)")
        expect(page.locator("#steps-table tbody tr")).to_have_count(3)
        expect(page.locator("#figures-table")).to_contain_text("Max drawdown")
        expect(page.locator("#run-chart")).to_be_visible()
        assert page.evaluate("() => window.researcherChart.data.datasets.length") >= 3
        expect(page.get_by_role("link", name="Download as Markdown")).to_be_visible()
        page.screenshot(path=str(SHOTS / "researcher-run.png"), full_page=True)

        nav.get_by_role("link", name="Researcher", exact=True).click()
        expect(page.locator("#runs-table")).to_contain_text("Succeeded")
        browser.close()
