"""The navigation shows only what exists and what the member may open; a favicon; the admin
is titled and pluralised for people."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from accounts.models import Role
from ledger.models import RedemptionBatch
from projects.models import ApiKey
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def _page(client, org, role):
    client.force_login(MembershipFactory(org=org, role=role).user)
    return client.get(reverse("ledger:overview")).content.decode()


def test_members_do_not_see_the_audit_log_link_admins_do(client, org):
    assert "Audit log" not in _page(client, org, Role.MEMBER)
    assert "Audit log" in _page(client, org, Role.ADMIN)


def test_the_researcher_link_appears_only_when_the_page_exists(client, org, monkeypatch):
    from config import context_processors

    monkeypatch.setattr(context_processors, "_page_url", lambda name: None)
    assert ">Researcher</a>" not in _page(client, org, Role.OWNER)
    monkeypatch.setattr(context_processors, "_page_url", lambda name: "/somewhere/")
    assert ">Researcher</a>" in _page(client, org, Role.OWNER)


def test_every_page_has_a_favicon_and_a_menu_button(client, org):
    body = _page(client, org, Role.OWNER)
    assert 'rel="icon"' in body and "favicon.svg" in body
    assert 'aria-controls="site-nav"' in body and ">Menu</button>" in body


def test_the_admin_is_titled_and_pluralised_for_people():
    assert admin.site.site_header == "tokenforge administration"
    assert str(RedemptionBatch._meta.verbose_name_plural) == "redemption batches"
    assert str(ApiKey._meta.verbose_name_plural) == "API keys"
