"""Every page: one main navigation with the links issue 6 names, a visible label for every
form field, and a text on every button (keyboard and screen-reader users can use them)."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.test import Client
from django.urls import reverse

from tests.projects.dashboard_fixtures import *  # noqa: F403

pytestmark = pytest.mark.django_db

NAV_LINKS = ["Overview", "Projects", "API keys", "Usage", "Ledger", "Top up", "Members"]
FIELD_TAGS = {"input", "select", "textarea"}
NO_LABEL_NEEDED = {"hidden", "submit", "button", "reset", "image"}


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.fields: list[dict] = []
        self.label_for: set[str] = set()
        self.label_depth = 0
        self.buttons: list[str] = []
        self._button: list[str] | None = None
        self.nav: list[str] | None = None
        self._in_nav = False
        self._link: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "label":
            self.label_depth += 1
            if attrs.get("for"):
                self.label_for.add(attrs["for"])
        elif tag in FIELD_TAGS and attrs.get("type") not in NO_LABEL_NEEDED:
            self.fields.append({**attrs, "_wrapped": self.label_depth > 0, "_tag": tag})
        elif tag == "input" and attrs.get("type") in {"submit", "button"}:
            self.buttons.append(attrs.get("value", ""))
        elif tag == "button":
            self._button = [attrs.get("aria-label", "")]
        elif tag == "nav" and attrs.get("aria-label") == "Main":
            self._in_nav, self.nav = True, []
        elif tag == "a" and self._in_nav:
            self._link = []

    def handle_endtag(self, tag):
        if tag == "label":
            self.label_depth -= 1
        elif tag == "button" and self._button is not None:
            self.buttons.append("".join(self._button).strip())
            self._button = None
        elif tag == "nav":
            self._in_nav = False
        elif tag == "a" and self._link is not None:
            self.nav.append("".join(self._link).strip())
            self._link = None

    def handle_data(self, data):
        if self._button is not None:
            self._button.append(data)
        if self._link is not None:
            self._link.append(data)


def _parse(client: Client, url: str) -> _Page:
    response = client.get(url)
    assert response.status_code == 200, url
    page = _Page()
    page.feed(response.content.decode())
    return page


def _dashboard_urls(tenant) -> list[str]:
    return [
        reverse("ledger:overview"),
        reverse("projects:list"),
        reverse("ledger:project_detail", args=[tenant.project.pk]),
        reverse("projects:keys"),
        reverse("projects:key_create"),
        reverse("ledger:key_detail", args=[tenant.key.pk]),
        reverse("projects:key_edit", args=[tenant.key.pk]),
        reverse("ledger:usage"),
        reverse("ledger:ledger"),
        reverse("ledger:ledger") + "?view=money",
        reverse("ledger:request_detail", args=[tenant.record.request_id]),
        reverse("ledger:balance_drop"),
        reverse("ledger:topup"),
        reverse("accounts:members"),
        reverse("accounts:audit_log"),
        reverse("accounts:org_create"),
        reverse("accounts:password_change"),
        reverse("accounts:api_tokens"),
    ]


def _assert_usable(page: _Page, url: str) -> None:
    for field in page.fields:
        labelled = (
            field["_wrapped"]
            or field.get("id") in page.label_for
            or field.get("aria-label")
            or field.get("aria-labelledby")
        )
        assert labelled, f"{url}: <{field['_tag']} name={field.get('name')!r}> has no label"
    for text in page.buttons:
        assert text, f"{url}: a button without text"


def test_every_dashboard_page_has_the_navigation_labels_and_button_texts(tenant):
    client = tenant.client()
    fields_seen = 0
    for url in _dashboard_urls(tenant):
        page = _parse(client, url)
        fields_seen += len(page.fields)
        assert page.nav is not None, f"{url}: no main navigation"
        for name in NAV_LINKS:
            assert name in page.nav, f"{url}: navigation lacks {name!r}"
        _assert_usable(page, url)
    assert fields_seen > 30  # the parser saw the forms (filters, key form, budgets, ...)


@pytest.mark.parametrize(
    "name",
    [
        "accounts:home",
        "accounts:signup",
        "accounts:login",
        "accounts:password_reset",
    ],
)
def test_public_pages_label_every_field_and_button(client, name):
    url = reverse(name)
    _assert_usable(_parse(client, url), url)


def test_the_top_up_amount_is_labelled_amount(tenant, settings):
    settings.DEBUG = True  # the test payment provider stands in for Stripe
    page = _parse(tenant.client(), reverse("ledger:topup"))
    amount = next(f for f in page.fields if f.get("name") == "amount")
    assert amount.get("id") in page.label_for
    body = tenant.client().get(reverse("ledger:topup")).content.decode()
    assert f'<label for="{amount["id"]}">Amount</label>' in body
