from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts.errors import InvitationInvalid
from accounts.models import Invitation, Membership, Role
from accounts.selectors import invitation_token_hash
from accounts.services import invitation_accept, invitation_create
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def invite(client, django_capture_on_commit_callbacks):
    """invite(owner, ...) -> the email sent (mail goes out after commit)."""

    def send(owner, email="friend@example.com", role=Role.MEMBER):
        client.force_login(owner)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                reverse("accounts:member_invite"), {"email": email, "role": role}
            )
        assert response.status_code == 302
        return mail.outbox[-1]

    return send


def _path_from(message) -> str:
    line = next(line for line in message.body.splitlines() if "/accounts/invite/" in line)
    return "/" + line.split("://", 1)[1].split("/", 1)[1]


def test_inviting_emails_a_one_time_link_and_lists_the_invitation(client, owner, org, invite):
    message = invite(owner)
    assert message.to == ["friend@example.com"]
    assert org.name in message.subject
    invitation = Invitation.objects.for_org(org).get()
    token = _path_from(message).rstrip("/").rsplit("/", 1)[-1]
    assert invitation.token_hash == invitation_token_hash(token) != token  # only the hash stored
    body = client.get(reverse("accounts:members")).content.decode()
    assert "friend@example.com" in body and "Pending invitations" in body


def test_a_logged_in_user_accepts_once_and_a_second_use_fails(client, owner, org, invite):
    path = _path_from(invite(owner, role=Role.VIEWER))
    friend = UserFactory(email="friend@example.com")
    client.force_login(friend)
    assert ">Accept invitation</button>" in client.get(path).content.decode()
    response = client.post(path)
    assert response.status_code == 302
    assert Membership.objects.for_org(org).get(user=friend).role == Role.VIEWER
    again = client.post(path)
    assert again.status_code == 404
    assert "already been used" in again.content.decode()


def test_a_new_user_signs_up_from_the_invitation_and_joins(client, owner, org, invite):
    path = _path_from(invite(owner))
    client.logout()
    page = client.get(path).content.decode()
    assert ">Email</label>" in page and ">Password</label>" in page
    response = client.post(
        path, {"email": "friend@example.com", "password": "a long enough passphrase"}
    )
    assert response.status_code == 302
    friend = Membership.objects.for_org(org).get(user__email="friend@example.com")
    assert friend.role == Role.MEMBER
    assert int(client.session["_auth_user_id"]) == friend.user_id


def test_an_expired_invitation_fails(owner, org):
    created = invitation_create(org=org, invited_by=owner, email="late@example.com")
    Invitation.objects.filter(pk=created.invitation.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    late = UserFactory(email="late@example.com")
    with pytest.raises(InvitationInvalid, match="expired"):
        invitation_accept(token=created.token, user=late)
    assert not Membership.objects.for_org(org).filter(user=late).exists()


def test_an_expired_invitation_page_is_404(client, owner, org):
    created = invitation_create(org=org, invited_by=owner, email="late@example.com")
    Invitation.objects.filter(pk=created.invitation.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert client.get(created.accept_url).status_code == 404


def test_an_invitation_for_another_email_cannot_be_accepted(owner, org, user):
    created = invitation_create(org=org, invited_by=owner, email="someone@example.com")
    with pytest.raises(InvitationInvalid, match="someone@example.com"):
        invitation_accept(token=created.token, user=user)


def test_an_unknown_token_is_404(client, user):
    client.force_login(user)
    assert client.get(reverse("accounts:invite_accept", args=["nope"])).status_code == 404
    assert client.post(reverse("accounts:invite_accept", args=["nope"])).status_code == 404


def test_inviting_an_existing_member_is_refused_with_a_message(client, owner, viewer):
    client.force_login(owner)
    response = client.post(
        reverse("accounts:member_invite"), {"email": viewer.email, "role": Role.MEMBER}, follow=True
    )
    assert "already a member" in response.content.decode()


def test_an_admin_revokes_a_pending_invitation(client, owner, org):
    created = invitation_create(org=org, invited_by=owner, email="x@example.com")
    client.force_login(owner)
    response = client.post(reverse("accounts:invitation_revoke", args=[created.invitation.pk]))
    assert response.status_code == 302
    assert not Invitation.objects.for_org(org).exists()


def test_inviting_an_already_invited_email_resends_instead_of_duplicating(
    org, owner, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = invitation_create(org=org, invited_by=owner, email="new@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        second = invitation_create(org=org, invited_by=owner, email="New@example.com")
    assert Invitation.objects.filter(org=org).count() == 1
    assert first.invitation.pk == second.invitation.pk and first.token != second.token
    assert len(mailoutbox) == 2
