import pytest
from django.urls import reverse

from accounts.middleware import SESSION_KEY
from accounts.models import AuditEvent, Membership, Organization, Role, User

pytestmark = pytest.mark.django_db


def test_sign_up_page_labels_its_fields_email_password_and_organization_name(client):
    body = client.get(reverse("accounts:signup")).content.decode()
    for label in ("Email", "Password", "Organization name"):
        assert f">{label}</label>" in body
    assert ">Sign up</button>" in body


def test_sign_up_creates_the_user_the_organization_both_wallets_and_logs_in(client):
    response = client.post(
        reverse("accounts:signup"),
        {
            "email": "New@Example.com",
            "password": "a long enough passphrase",
            "organization_name": "Acme Labs",
        },
    )
    assert response.status_code == 302
    assert response.url == reverse("ledger:overview")
    user = User.objects.get(email="new@example.com")
    org = Organization.objects.get(name="Acme Labs")
    assert org.slug == "acme-labs"
    membership = Membership.objects.for_org(org).get(user=user)
    assert membership.role == Role.OWNER
    assert sorted(org.accounts.values_list("currency", flat=True)) == ["CREDIT", "RMB"]
    assert int(client.session["_auth_user_id"]) == user.pk
    assert client.session[SESSION_KEY] == org.pk
    assert AuditEvent.objects.for_org(org).filter(action="membership.create").exists()


def test_sign_up_gives_a_second_organization_with_the_same_name_its_own_slug(client, user):
    from accounts.services import organization_create

    first = organization_create(name="Acme", owner=user)
    second = organization_create(name="Acme", owner=user)
    assert first.slug == "acme"
    assert second.slug == "acme-2"


def test_sign_up_refuses_an_email_already_taken_whatever_its_case(client, user):
    response = client.post(
        reverse("accounts:signup"),
        {
            "email": user.email.upper(),
            "password": "a long enough passphrase",
            "organization_name": "Dup",
        },
    )
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert not Organization.objects.filter(name="Dup").exists()


def test_sign_up_refuses_a_weak_password_and_creates_nothing(client):
    response = client.post(
        reverse("accounts:signup"),
        {"email": "weak@example.com", "password": "123", "organization_name": "Weak"},
    )
    assert response.status_code == 200
    assert not User.objects.filter(email="weak@example.com").exists()


def test_a_failing_setup_hook_rolls_the_whole_sign_up_back(client, settings):
    settings.ORGANIZATION_SETUP_HOOKS = ["tests.accounts.test_signup.failing_hook"]
    with pytest.raises(RuntimeError):
        from accounts.services import user_signup

        user_signup(email="boom@example.com", password="x" * 12, organization_name="Boom")
    assert not User.objects.filter(email="boom@example.com").exists()
    assert not Organization.objects.filter(name="Boom").exists()


def failing_hook(*, org):
    raise RuntimeError("wallets unavailable")


def test_home_page_tells_a_visitor_what_tokenforge_is(client):
    body = client.get("/").content.decode()
    assert "OpenAI-compatible" in body
    assert 'href="/accounts/signup/"' in body and 'href="/accounts/login/"' in body


def test_a_duplicate_email_that_slips_past_the_form_is_a_clear_error_not_a_500(user):
    from accounts.errors import AccountsError
    from accounts.services import user_signup

    with pytest.raises(AccountsError, match="already exists"):
        user_signup(email=user.email.upper(), password="x" * 12, organization_name="Race")
    assert not Organization.objects.filter(name="Race").exists()
