import pytest
from django.urls import reverse

from accounts.errors import LastOwner, RoleTooLow
from accounts.models import AuditEvent, Invitation, Membership, Role
from accounts.services import membership_remove, membership_set_role

pytestmark = pytest.mark.django_db


def _membership(org, user) -> Membership:
    return Membership.objects.for_org(org).get(user=user)


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MEMBER])
def test_viewers_and_members_see_the_members_page_but_get_no_controls(client, member_of, role):
    client.force_login(member_of(role))
    response = client.get(reverse("accounts:members"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Send invitation" not in body and "Change role" not in body


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MEMBER])
def test_viewers_and_members_cannot_invite_change_roles_or_remove(
    client, org, owner, member_of, role
):
    someone = member_of(role)
    target = member_of(Role.VIEWER)
    client.force_login(someone)
    response = client.post(
        reverse("accounts:member_invite"), {"email": "x@example.com", "role": Role.VIEWER}
    )
    assert response.status_code == 403
    assert not Invitation.objects.for_org(org).exists()
    target_id = _membership(org, target).pk
    response = client.post(reverse("accounts:member_role", args=[target_id]), {"role": "admin"})
    assert response.status_code == 403
    assert client.post(reverse("accounts:member_remove", args=[target_id])).status_code == 403
    assert _membership(org, target).role == Role.VIEWER


def test_an_admin_invites_and_changes_roles_with_an_audit_trail(client, org, admin_user, viewer):
    client.force_login(admin_user)
    response = client.post(
        reverse("accounts:member_invite"), {"email": "new@example.com", "role": Role.ADMIN}
    )
    assert response.status_code == 302
    assert Invitation.objects.for_org(org).get().role == Role.ADMIN
    target = _membership(org, viewer)
    response = client.post(reverse("accounts:member_role", args=[target.pk]), {"role": "member"})
    assert response.status_code == 302
    assert _membership(org, viewer).role == Role.MEMBER
    event = AuditEvent.objects.for_org(org).get(action="membership.role_change")
    assert event.actor == admin_user and event.changes["role"] == ["viewer", "member"]


def test_an_admin_cannot_grant_owner_nor_touch_an_owner(client, org, owner, admin_user, viewer):
    client.force_login(admin_user)
    target = _membership(org, viewer)
    response = client.post(reverse("accounts:member_role", args=[target.pk]), {"role": "owner"})
    assert response.status_code == 403
    owner_row = _membership(org, owner)
    response = client.post(reverse("accounts:member_role", args=[owner_row.pk]), {"role": "viewer"})
    assert response.status_code == 403
    assert client.post(reverse("accounts:member_remove", args=[owner_row.pk])).status_code == 403
    response = client.post(
        reverse("accounts:member_invite"), {"email": "boss@example.com", "role": Role.OWNER}
    )
    assert response.status_code == 403
    assert _membership(org, owner).role == Role.OWNER


def test_the_last_owner_cannot_be_demoted_or_removed(client, org, owner):
    mine = _membership(org, owner)
    with pytest.raises(LastOwner):
        membership_set_role(actor=owner, membership=mine, role=Role.ADMIN)
    with pytest.raises(LastOwner):
        membership_remove(actor=owner, membership=mine)
    client.force_login(owner)
    response = client.post(
        reverse("accounts:member_role", args=[mine.pk]), {"role": "admin"}, follow=True
    )
    assert "at least one owner" in response.content.decode()
    assert _membership(org, owner).role == Role.OWNER


def test_with_two_owners_one_may_step_down(org, owner, member_of):
    second = member_of(Role.OWNER)
    membership_set_role(actor=owner, membership=_membership(org, owner), role=Role.ADMIN)
    assert _membership(org, owner).role == Role.ADMIN
    with pytest.raises(LastOwner):
        membership_set_role(actor=second, membership=_membership(org, second), role=Role.MEMBER)


def test_an_owner_removes_a_member_and_it_is_audited(client, org, owner, viewer):
    target = _membership(org, viewer)
    client.force_login(owner)
    assert client.post(reverse("accounts:member_remove", args=[target.pk])).status_code == 302
    assert not Membership.objects.for_org(org).filter(user=viewer).exists()
    assert AuditEvent.objects.for_org(org).filter(action="membership.remove").exists()


def test_a_viewer_may_leave_on_their_own(client, org, viewer):
    client.force_login(viewer)
    mine = _membership(org, viewer)
    response = client.post(reverse("accounts:member_remove", args=[mine.pk]))
    assert response.status_code == 302
    assert not Membership.objects.for_org(org).filter(user=viewer).exists()


def test_services_refuse_role_changes_from_non_members(org, viewer, other_owner):
    with pytest.raises(RoleTooLow):
        membership_set_role(actor=other_owner, membership=_membership(org, viewer), role="admin")


def test_an_admin_is_not_offered_the_owner_role_nor_controls_on_owners(
    client, org, owner, admin_user
):
    client.force_login(admin_user)
    response = client.get(reverse("accounts:members"))
    assert ("owner", "Owner") not in response.context["invite_form"].fields["role"].choices
    owner_rows = [r for r in response.context["rows"] if r["membership"].role == Role.OWNER]
    assert owner_rows and not any(r["can_change"] for r in owner_rows)
