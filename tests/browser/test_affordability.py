"""Affordability in Chromium: a member sees the forecast on a project page, the saved-by-routing
line on the overview, and prices a feature on the estimate page, at 1280 and 390 px."""

from __future__ import annotations

import pytest
from openai import OpenAI

from accounts.models import Role
from projects.services import key_create
from routing.services import routing_apply
from tests.browser.test_dashboard_walkthrough import (  # noqa: F401
    ROUTING,
    SHOTS,
    live_server_url,
    page,
)
from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory
from tests.ledger.ledger_helpers import fund

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a long and good password 42"


def test_forecast_savings_and_estimate_are_on_the_pages(page, live_server_url, monkeypatch):  # noqa: F811
    from playwright.sync_api import expect

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    routing_apply(data=ROUTING, env={})
    org = OrganizationFactory(name="Planners")
    fund(org, "CREDIT", "10")
    fund(org, "RMB", "10")
    project = ProjectFactory(org=org, name="chatbot")
    secret = key_create(project=project, name="web").secret
    user = UserFactory(email="planner@example.com")
    user.set_password(PASSWORD)
    user.save()
    MembershipFactory(org=org, user=user, role=Role.OWNER)
    client = OpenAI(base_url=live_server_url + "/v1", api_key=secret)
    for _ in range(3):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "plan"}]
        )

    page.goto(live_server_url + "/accounts/login/")
    page.get_by_label("Email").fill("planner@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    page.goto(f"{live_server_url}/dashboard/projects/{project.pk}/")
    forecast = page.locator("section.forecast")
    expect(forecast.get_by_role("heading", name="Forecast")).to_be_visible()
    expect(forecast.locator("tr[data-forecast='RMB']")).to_contain_text("RMB")
    page.screenshot(path=str(SHOTS / "afford-project-1280.png"), full_page=True)

    page.goto(live_server_url + "/dashboard/")
    saved = page.locator("section.savings-line [data-savings='RMB']")
    expect(saved).to_contain_text("would have cost")
    expect(saved).to_contain_text("official route")
    page.screenshot(path=str(SHOTS / "afford-overview-1280.png"), full_page=True)

    page.get_by_role("link", name="Estimate").first.click()
    page.get_by_label("Model").select_option("gpt-4o-mini")
    page.get_by_label("Requests per day").fill("1000")
    page.get_by_label("Average input tokens per request").fill("1200")
    page.get_by_label("Average output tokens per request").fill("300")
    page.get_by_role("button", name="Estimate", exact=True).click()
    rows = page.locator("table.estimate tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("tr[data-upstream='walk-relay']")).to_contain_text("Used first")
    page.screenshot(path=str(SHOTS / "afford-estimate-1280.png"), full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    for name, path in [
        ("project", f"/dashboard/projects/{project.pk}/"),
        ("estimate", f"/dashboard/estimate/?source=project:{project.pk}&scale=2"),
    ]:
        page.goto(live_server_url + path)
        page.screenshot(path=str(SHOTS / f"afford-{name}-390.png"), full_page=True)
