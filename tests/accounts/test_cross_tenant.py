"""A member of one organization gets 404 for every object of another, by every URL we add."""

import pytest
from django.urls import reverse

from accounts.middleware import SESSION_KEY
from accounts.models import Invitation, Membership, Role
from accounts.services import invitation_create
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def foreign(other_org, other_owner, member_of):
    """Another organization's membership and pending invitation."""
    victim = member_of(Role.VIEWER, organization=other_org)
    return {
        "membership": Membership.objects.for_org(other_org).get(user=victim),
        "invitation": invitation_create(
            org=other_org, invited_by=other_owner, email="pending@example.com"
        ).invitation,
    }


@pytest.mark.parametrize(
    ("name", "key", "data"),
    [
        ("accounts:member_role", "membership", {"role": "owner"}),
        ("accounts:member_remove", "membership", {}),
        ("accounts:invitation_revoke", "invitation", {}),
    ],
)
def test_an_owner_cannot_act_on_another_organizations_rows(client, owner, foreign, name, key, data):
    client.force_login(owner)
    response = client.post(reverse(name, args=[foreign[key].pk]), data)
    assert response.status_code == 404
    foreign["membership"].refresh_from_db()
    assert foreign["membership"].role == Role.VIEWER
    assert Invitation.objects.filter(pk=foreign["invitation"].pk).exists()


def test_the_session_org_decides_even_for_a_member_of_both(client, owner, org, other_org, foreign):
    """Member of both, but acting in `org`: the other org's rows are still 404 there."""
    MembershipFactory(org=other_org, user=owner, role=Role.OWNER)
    client.force_login(owner)
    client.post(reverse("accounts:switch"), {"org": org.pk})
    url = reverse("accounts:member_remove", args=[foreign["membership"].pk])
    assert client.post(url).status_code == 404
    client.post(reverse("accounts:switch"), {"org": other_org.pk})
    assert client.session[SESSION_KEY] == other_org.pk
    assert client.post(url).status_code == 302


def test_the_members_page_lists_only_the_current_organization(client, owner, foreign):
    client.force_login(owner)
    body = client.get(reverse("accounts:members")).content.decode()
    assert foreign["membership"].user.email not in body
    assert "pending@example.com" not in body


def test_switching_into_another_organization_is_404(client, owner, other_org):
    client.force_login(owner)
    assert client.post(reverse("accounts:switch"), {"org": other_org.pk}).status_code == 404


def test_another_organizations_invitation_cannot_be_taken_by_someone_else(client, owner, foreign):
    """The link is bound to the invited email: a stranger holding it gets nothing."""
    from accounts.services import invitation_create as create

    created = create(
        org=foreign["invitation"].org,
        invited_by=foreign["invitation"].invited_by,
        email="target@example.com",
    )
    client.force_login(owner)
    response = client.post(created.accept_url, follow=True)
    assert "target@example.com" in response.content.decode()
    assert not Membership.objects.for_org(created.invitation.org).filter(user=owner).exists()
