from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import Membership, Organization, Role, User

pytestmark = pytest.mark.django_db


def _run(*args) -> list[str]:
    out = StringIO()
    call_command("create_tenant", *args, stdout=out)
    return out.getvalue().strip().splitlines()


def test_create_tenant_makes_user_owner_org_and_wallets_and_prints_the_slug_last():
    lines = _run("--org", "Acme Corp", "--email", "Ops@Example.com", "--password", "pw-123456")
    org = Organization.objects.get(slug=lines[-1])
    assert org.name == "Acme Corp" and lines[-1] == "acme-corp"
    user = User.objects.get(email="ops@example.com")
    assert user.check_password("pw-123456")
    assert Membership.objects.for_org(org).get(user=user).role == Role.OWNER
    assert sorted(org.accounts.values_list("currency", flat=True)) == ["CREDIT", "RMB"]


def test_create_tenant_twice_changes_nothing():
    first = _run("--org", "Acme", "--email", "ops@example.com", "--password", "pw-123456")
    counts = (User.objects.count(), Organization.objects.count(), Membership.objects.count())
    second = _run("--org", "Acme", "--email", "OPS@example.com", "--password", "other-pw")
    assert second[-1] == first[-1]
    assert counts == (
        User.objects.count(),
        Organization.objects.count(),
        Membership.objects.count(),
    )
    assert User.objects.get(email="ops@example.com").check_password("pw-123456")


def test_create_tenant_reuses_an_existing_user_for_a_new_org(user):
    slug = _run("--org", "Second", "--email", user.email, "--password", "ignored")[-1]
    assert Membership.objects.get(org__slug=slug).user == user


def test_create_tenant_refuses_a_bad_email():
    with pytest.raises(CommandError, match="email"):
        _run("--org", "Acme", "--email", "not-an-email", "--password", "x")
