"""Deployment hardening: `check --deploy` is clean with the production settings, and every
page carries a self-only Content Security Policy, clickjacking protection and CSRF checks."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from tests.projects.dashboard_fixtures import *  # noqa: F403

ROOT = Path(__file__).resolve().parents[2]


def _production(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "gateway.example.com",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
        "FIELD_ENCRYPTION_KEY": "x0mEk1cWg9C2oTqgk3yM0H0e4tI0i0n8H0Zl2sC4b6k=",
        "DEBUG": "false",
        **env,
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings():
    result = _production("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_are_secure_and_the_ssl_redirect_is_configurable():
    code = (
        "from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE, "
        "s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS > 0, s.SECURE_SSL_REDIRECT, "
        "s.SECURE_PROXY_SSL_HEADER, s.X_FRAME_OPTIONS)"
    )
    default = _production("shell", "-c", code)
    assert default.stdout.split("\n")[-2] == (
        "True True True True ('HTTP_X_FORWARDED_PROTO', 'https') DENY"
    ), default.stderr
    direct = _production(
        "shell", "-c", code, SECURE_SSL_REDIRECT="false", SECURE_PROXY_SSL_HEADER=""
    )
    assert direct.stdout.split("\n")[-2] == "True True True False None DENY", direct.stderr


def _csp(response) -> dict[str, str]:
    header = response.headers["Content-Security-Policy"]
    return {
        part.strip().split(" ", 1)[0]: part.strip().split(" ", 1)[1]
        for part in header.split(";")
        if part.strip()
    }


@pytest.mark.django_db
def test_pages_carry_a_self_only_csp_and_deny_framing(tenant):
    pages = [
        (Client(), reverse("accounts:login")),
        (tenant.client(), reverse("ledger:overview")),
        (tenant.client(), reverse("ledger:usage")),
        (tenant.client(), reverse("projects:keys")),
    ]
    for client, url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        policy = _csp(response)
        assert policy["default-src"] == "'self'"
        assert policy["script-src"] == "'self'"  # no inline script, no CDN
        assert policy["object-src"] == "'none'"
        assert policy["frame-ancestors"] == "'none'"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        # The page itself obeys: every script is a file from our origin.
        html = response.content.decode()
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag, (url, tag)


@pytest.mark.django_db
def test_the_api_docs_page_has_no_inline_script(tenant):
    response = tenant.client().get(reverse("api-docs"))
    assert response.status_code == 200
    for tag in re.findall(r"<script\b[^>]*>", response.content.decode()):
        assert "src=" in tag, tag


@pytest.mark.django_db
def test_forms_and_session_api_calls_without_a_csrf_token_are_refused(tenant):
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("accounts:login"), {"username": "a@b.c", "password": "x"})
    assert response.status_code == 403
    client.force_login(tenant.users["owner"])
    response = client.post(reverse("projects:list"), {"name": "new", "environment": "staging"})
    assert response.status_code == 403
    api = APIClient(enforce_csrf_checks=True)
    api.force_login(tenant.users["owner"])
    assert api.post("/api/projects/", {"name": "x"}, format="json").status_code == 403
