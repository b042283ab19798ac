from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from ledger.models import Budget
from projects.models import ApiKey, Project
from projects.services import key_hash

pytestmark = pytest.mark.django_db


def test_create_key_creates_the_project_and_prints_the_key_last(org):
    out = io.StringIO()
    call_command(
        "create_key",
        "--org",
        org.slug,
        "--project",
        "backend",
        "--name",
        "ci",
        "--budget",
        "CREDIT:10:month",
        "--budget",
        "RMB:50.5:total",
        "--models",
        "gpt-4o-mini,demo-gpt",
        "--wallets",
        "RMB,CREDIT",
        "--rpm",
        "60",
        "--tpm",
        "1000",
        stdout=out,
    )
    key = out.getvalue().strip().splitlines()[-1]
    assert key.startswith("tf-") and len(key) >= 43
    api_key = ApiKey.objects.get(key_hash=key_hash(key))
    assert api_key.project == Project.objects.get(org=org, name="backend")
    assert api_key.allowed_models == ["gpt-4o-mini", "demo-gpt"]
    assert api_key.allowed_wallets == ["RMB", "CREDIT"]
    assert (api_key.rpm_limit, api_key.tpm_limit, api_key.name) == (60, 1000, "ci")
    budgets = {b.currency: (b.amount, b.period) for b in Budget.objects.filter(api_key=api_key)}
    assert budgets == {"CREDIT": (Decimal("10"), "month"), "RMB": (Decimal("50.5"), "total")}


@pytest.mark.parametrize(
    "args",
    [
        ["--budget", "USD:10:month"],
        ["--budget", "CREDIT:ten:month"],
        ["--budget", "CREDIT:10:year"],
        ["--budget", "CREDIT:10"],
        ["--wallets", "EUR"],
        ["--rpm", "0"],
        ["--tpm", "lots"],
    ],
)
def test_bad_input_is_a_command_error_and_creates_nothing(org, args):
    with pytest.raises(CommandError):
        call_command("create_key", "--org", org.slug, "--project", "p", *args, stdout=io.StringIO())
    assert not ApiKey.objects.exists() and not Project.objects.filter(name="p").exists()


def test_an_unknown_org_is_a_command_error(db):
    with pytest.raises(CommandError, match="no organization"):
        call_command("create_key", "--org", "ghost", "--project", "p")
