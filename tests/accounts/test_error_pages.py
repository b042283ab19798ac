"""403, 404 and 500 pages are our own, plain and on the site's layout; 500 needs no database."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from django.urls import reverse
from django.views.defaults import server_error

from accounts.models import Role

pytestmark = pytest.mark.django_db


def test_an_unknown_page_is_our_404_with_the_navigation(client, owner):
    client.force_login(owner)
    response = client.get("/dashboard/no-such-page/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "<h1>Not found</h1>" in body
    assert 'aria-label="Main"' in body


def test_a_refused_role_gets_our_403_with_the_reason(client, member_of):
    client.force_login(member_of(Role.VIEWER))
    response = client.get(reverse("accounts:audit_log"))
    assert response.status_code == 403
    body = response.content.decode()
    assert "<h1>Not allowed</h1>" in body
    assert "does not allow this" in body


def test_the_500_page_renders_without_touching_the_database(django_assert_num_queries):
    request = RequestFactory().get("/")
    with django_assert_num_queries(0):
        response = server_error(request)
    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()


def test_a_form_without_its_csrf_token_gets_our_plain_page(owner):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post(reverse("accounts:switch"), {"org": 1})
    assert response.status_code == 403
    assert "This form has expired" in response.content.decode()
