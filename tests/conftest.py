"""Shared fixtures. Tests run on real PostgreSQL and Redis (see config/settings/test.py)."""

from __future__ import annotations

import contextlib

import pytest
from django.core.cache import cache

from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory


def pytest_collection_modifyitems(config, items):
    """Under `--ds config.settings.test_sqlite` the same files run on SQLite, minus the few
    tests about PostgreSQL itself (its immutability triggers, ALTER TABLE on constraints)."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
        return
    skip = pytest.mark.skip(reason="PostgreSQL-only (triggers or DDL)")
    for item in items:
        if item.get_closest_marker("postgres_only"):
            item.add_marker(skip)


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
