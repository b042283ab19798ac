import pytest
from django.core import mail
from django.urls import reverse

from tests.accounts.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def _login(client, email, password, ip="127.0.0.1"):
    return client.post(
        reverse("accounts:login"), {"username": email, "password": password}, REMOTE_ADDR=ip
    )


def test_log_in_page_labels_its_fields_email_and_password(client):
    body = client.get(reverse("accounts:login")).content.decode()
    assert ">Email</label>" in body and ">Password</label>" in body
    assert ">Log in</button>" in body


def test_log_in_with_email_in_any_case_then_log_out(client, owner):
    response = _login(client, owner.email.upper(), PASSWORD)
    assert response.status_code == 302
    assert int(client.session["_auth_user_id"]) == owner.pk
    response = client.post(reverse("accounts:logout"))
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_wrong_password_shows_the_form_again_with_an_error(client, owner):
    response = _login(client, owner.email, "wrong")
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert 'role="alert"' in response.content.decode()


def test_repeated_failures_lock_the_account_with_a_clear_429_page(client, owner, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(client, owner.email, "wrong")
    response = _login(client, owner.email, PASSWORD)
    assert response.status_code == 429
    body = response.content.decode()
    assert "Too many log-in attempts" in body
    assert "_auth_user_id" not in client.session


def test_lockout_is_per_account_across_addresses_and_spellings(client, owner, settings):
    for n in range(settings.AXES_FAILURE_LIMIT):
        email = owner.email.upper() if n % 2 else owner.email
        _login(client, email, "wrong", ip=f"10.0.0.{n + 1}")
    response = _login(client, owner.email, PASSWORD, ip="10.9.9.9")
    assert response.status_code == 429


def test_lockout_is_per_address_across_accounts(client, owner, settings):
    for n in range(settings.AXES_FAILURE_LIMIT):
        _login(client, f"guess{n}@example.com", "wrong", ip="10.1.1.1")
    assert _login(client, owner.email, PASSWORD, ip="10.1.1.1").status_code == 429
    assert _login(client, owner.email, PASSWORD, ip="10.2.2.2").status_code == 302


def test_password_reset_emails_a_link_that_sets_a_new_password(client, owner):
    response = client.post(reverse("accounts:password_reset"), {"email": owner.email})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    link = next(line for line in mail.outbox[0].body.splitlines() if "/password/reset/" in line)
    path = link.split("://", 1)[1].split("/", 1)[1]
    response = client.get("/" + path, follow=True)
    assert response.status_code == 200
    response = client.post(
        response.redirect_chain[-1][0],
        {"new_password1": "a brand new passphrase", "new_password2": "a brand new passphrase"},
    )
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.check_password("a brand new passphrase")


def test_password_change_requires_the_old_password(client, owner):
    client.force_login(owner)
    assert client.get(reverse("accounts:password_change")).status_code == 200
    response = client.post(
        reverse("accounts:password_change"),
        {
            "old_password": PASSWORD,
            "new_password1": "another long passphrase",
            "new_password2": "another long passphrase",
        },
    )
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.check_password("another long passphrase")
