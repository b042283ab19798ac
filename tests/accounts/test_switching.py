import pytest
from django.urls import reverse

from accounts.middleware import SESSION_KEY
from accounts.models import Role
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def test_switching_to_an_organization_you_belong_to_stores_it_in_the_session(
    client, owner, other_org
):
    MembershipFactory(org=other_org, user=owner, role=Role.VIEWER)
    client.force_login(owner)
    response = client.post(reverse("accounts:switch"), {"org": other_org.pk})
    assert response.status_code == 302
    assert client.session[SESSION_KEY] == other_org.pk
    page = client.get(reverse("accounts:members"))
    assert page.context["request"].org.pk == other_org.pk
    assert f"Members of {other_org.name}" in page.content.decode()


def test_switching_to_an_organization_you_do_not_belong_to_is_404(client, owner, org, other_org):
    client.force_login(owner)
    client.post(reverse("accounts:switch"), {"org": org.pk})
    response = client.post(reverse("accounts:switch"), {"org": other_org.pk})
    assert response.status_code == 404
    assert client.session[SESSION_KEY] == org.pk


def test_switching_with_garbage_is_404_not_500(client, owner):
    client.force_login(owner)
    assert client.post(reverse("accounts:switch"), {"org": "abc"}).status_code == 404
    assert client.post(reverse("accounts:switch"), {}).status_code == 404


def test_switcher_is_a_post_only_form_for_logged_in_users(client, owner):
    assert client.post(reverse("accounts:switch"), {"org": 1}).status_code == 302  # to log in
    client.force_login(owner)
    assert client.get(reverse("accounts:switch")).status_code == 405


def test_top_bar_offers_the_switcher_when_you_belong_to_several(client, owner, other_org):
    MembershipFactory(org=other_org, user=owner, role=Role.MEMBER)
    client.force_login(owner)
    body = client.get(reverse("accounts:members")).content.decode()
    assert '<label for="org-switch">Organization</label>' in body
    assert ">Switch</button>" in body


def test_a_stale_session_organization_falls_back_to_one_you_belong_to(
    client, owner, org, other_org
):
    client.force_login(owner)
    session = client.session
    session[SESSION_KEY] = other_org.pk  # e.g. removed from it since
    session.save()
    response = client.get(reverse("accounts:members"))
    assert response.status_code == 200
    assert f"Members of {org.name}" in response.content.decode()
