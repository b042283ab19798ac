"""Fixtures for the accounts tests: a second organization and members of each role."""

from __future__ import annotations

import pytest

from accounts.models import Role
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

PASSWORD = "correct horse battery staple"


@pytest.fixture
def member_of(org):
    """member_of(role) -> a new user with that role in `org`."""

    def make(role: str, organization=None):
        return MembershipFactory(org=organization or org, role=role, user=UserFactory()).user

    return make


@pytest.fixture
def admin_user(member_of):
    return member_of(Role.ADMIN)


@pytest.fixture
def viewer(member_of):
    return member_of(Role.VIEWER)


@pytest.fixture
def other_org(db):
    return OrganizationFactory()


@pytest.fixture
def other_owner(other_org):
    return MembershipFactory(org=other_org, role=Role.OWNER).user
