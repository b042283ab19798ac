"""Shared fixtures. Tests run on real PostgreSQL and Redis (see config/settings/test.py)."""

from __future__ import annotations

import contextlib

import pytest
from django.core.cache import cache

from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory


@pytest.fixture(autouse=True)
def _clear_cache():
    """Redis is shared by the whole run; each test starts with an empty cache."""
    # Tests that take Redis down restore it themselves.
    with contextlib.suppress(Exception):
        cache.clear()
    yield


@pytest.fixture
def org(db):
    return OrganizationFactory()


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def owner(db, org):
    return MembershipFactory(org=org).user


@pytest.fixture
def project(db, org):
    return ProjectFactory(org=org)
