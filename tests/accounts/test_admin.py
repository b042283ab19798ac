import pytest
from django.urls import reverse

from accounts.audit import audit_record
from accounts.models import AuditEvent, Invitation, Membership, Organization, User
from accounts.services import invitation_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    staff = User.objects.create_superuser(email="op@example.com", password="x")
    client.force_login(staff)
    return staff


@pytest.mark.parametrize("model", [User, Organization, Membership, Invitation, AuditEvent])
def test_admin_lists_and_searches_each_model(client, operator, owner, org, model):
    invitation_create(org=org, invited_by=owner, email="inv@example.com")
    url = reverse(f"admin:accounts_{model._meta.model_name}_changelist")
    assert client.get(url).status_code == 200
    assert client.get(url, {"q": "example"}).status_code == 200


def test_admin_opens_an_organization_with_its_members(client, operator, owner, org):
    url = reverse("admin:accounts_organization_change", args=[org.pk])
    body = client.get(url).content.decode()
    assert owner.email in body or str(owner.pk) in body


def test_admin_creates_a_user_by_email_only(client, operator):
    response = client.post(
        reverse("admin:accounts_user_add"),
        {
            "email": "Made@Example.com",
            "usable_password": "true",
            "password1": "a long enough passphrase",
            "password2": "a long enough passphrase",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert User.objects.get(email="made@example.com").check_password("a long enough passphrase")


def test_the_audit_log_is_read_only(client, operator, owner, org):
    event = audit_record(org=org, actor=owner, action="membership.create", target=org)
    assert client.get(reverse("admin:accounts_auditevent_add")).status_code == 403
    assert (
        client.post(reverse("admin:accounts_auditevent_delete", args=[event.pk])).status_code == 403
    )
