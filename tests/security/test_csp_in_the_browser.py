"""The Content Security Policy, enforced by a real browser: headless Chromium walks the
dashboard pages, the usage chart (Chart.js), the key page and the API docs (Swagger UI)
with a `securitypolicyviolation` listener; no page may trip the policy or throw."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.browser.test_dashboard_walkthrough import live_server_url, page  # noqa: F401
from tests.projects.dashboard_fixtures import Tenant

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""


@pytest.fixture
def dashboard_tenant(transactional_db) -> Tenant:
    """An owner with a project, a key, money and a usage record (made before the browser
    starts: Playwright's sync API runs an event loop, where the ORM may not be called).
    The owner is also an operator, so the admin is walked too."""
    tenant = Tenant()
    owner = tenant.users["owner"]
    owner.is_staff = owner.is_superuser = True
    owner.save()
    return tenant


def test_dashboard_pages_run_under_the_csp_without_a_single_violation(
    dashboard_tenant,
    live_server_url,  # noqa: F811
    page,  # noqa: F811
):
    tenant = dashboard_tenant
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    page.add_init_script(RECORD_VIOLATIONS)
    page.goto(live_server_url + reverse("accounts:login"))
    page.get_by_label("Email").fill(tenant.users["owner"].email)
    page.get_by_label("Password", exact=True).fill("correct horse battery staple")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/dashboard/**")
    urls = [
        reverse("ledger:overview"),
        reverse("ledger:usage"),
        reverse("ledger:ledger"),
        reverse("ledger:request_detail", args=[tenant.record.request_id]),
        reverse("projects:keys"),
        reverse("ledger:key_detail", args=[tenant.key.pk]),
        reverse("ledger:topup"),
        reverse("api-docs"),
        reverse("admin:index"),
        reverse("admin:routing_upstream_changelist"),
        reverse("admin:projects_apikey_change", args=[tenant.key.pk]),
    ]
    violations = {}
    for url in urls:
        page.goto(live_server_url + url)
        page.wait_for_load_state("networkidle")
        if url == reverse("ledger:usage"):
            page.wait_for_function("Chart.getChart('usage-chart') !== undefined")
        if url == reverse("api-docs"):
            page.wait_for_selector(".swagger-ui .information-container")
        found = page.evaluate("window.__csp")
        if found:
            violations[url] = found
    assert violations == {}
    assert errors == []
