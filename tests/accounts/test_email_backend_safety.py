"""Production never prints password-reset or invitation links: a console e-mail backend with
DEBUG off refuses to start unless EMAIL_CONSOLE_ALLOWED=true (then links are removed), and
with no EMAIL_URL nothing is sent. `make run` (DEBUG on) still prints them for developers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINK = "https://gateway.example.com/accounts/password/reset/MQ/abc-0123456789abcdef/"
SEND = (
    "from django.core.mail import send_mail; "
    f"send_mail('Reset', 'Choose a new password here:\\n{LINK}\\n', 'a@example.com', "
    "['b@example.com']); print('sent')"
)


def _manage(*args: str, settings: str = "config.settings.production", **env: str):
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in {"EMAIL_URL", "EMAIL_CONSOLE_ALLOWED", "DEBUG"}
    }
    environment.update(
        {
            "DJANGO_SETTINGS_MODULE": settings,
            "SECRET_KEY": "x" * 60,
            "ALLOWED_HOSTS": "gateway.example.com",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
            "DEBUG": "false",
            **env,
        }
    )
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_console_backend_with_debug_off_refuses_to_start():
    result = _manage("check", EMAIL_URL="consolemail://")
    assert result.returncode != 0
    assert "EMAIL_CONSOLE_ALLOWED" in result.stderr


@pytest.mark.parametrize(
    "env",
    [
        {"EMAIL_URL": "consolemail://", "EMAIL_CONSOLE_ALLOWED": "true"},
        {},  # no EMAIL_URL at all: nothing is sent
    ],
    ids=["console-allowed", "unset"],
)
def test_production_starts_and_never_prints_the_link(env):
    result = _manage("shell", "-c", SEND, **env)
    assert result.returncode == 0, result.stderr
    assert "sent" in result.stdout
    output = result.stdout + result.stderr
    assert "abc-0123456789abcdef" not in output
    assert "/accounts/password/reset/" not in output
    if env:
        assert "Choose a new password here" in output  # the message itself is printed


def test_debug_on_still_prints_links_for_developers():
    result = _manage("shell", "-c", SEND, settings="config.settings.local", DEBUG="true")
    assert result.returncode == 0, result.stderr
    assert LINK in result.stdout
