"""`reconcile` passes on a clean ledger and names each invariant we deliberately break.

Ledger rows are protected by a trigger, so breaking them means inserting inconsistent rows
or changing the cached balances the invariants compare against (all inside the test's
transaction, rolled back afterwards).
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.db.models import F

from ledger.models import (
    Account,
    AccountKind,
    BudgetCounter,
    Hold,
    HoldStatus,
    Posting,
    Transaction,
    UsageRecord,
    UsageStatus,
)
from ledger.services.budgets import budget_set
from ledger.services.holds import hold_capture, hold_place, hold_void
from ledger.services.postings import system_account
from ledger.services.reconcile import reconcile
from tests.factories import OrganizationFactory, ProjectFactory
from tests.ledger.ledger_helpers import fund, wallet

pytestmark = pytest.mark.django_db


@pytest.fixture
def busy_org(org, project):
    """An organization with top-ups, a budget, captured, voided and open holds."""
    fund(org, "CREDIT", "10")
    fund(org, "RMB", "5")
    budget_set(org=org, project=project, currency="CREDIT", amount=Decimal("8"), period="day")
    usage = {"request_id": "req-1", "model": "m", "wallet": "CREDIT", "project_id": project.pk}
    captured = hold_place(org_id=org.pk, currency="CREDIT", amount="2", project_id=project.pk)
    hold_capture(hold_id=captured.pk, amount="0.5", usage=usage)
    voided = hold_place(org_id=org.pk, currency="CREDIT", amount="1", project_id=project.pk)
    hold_void(hold_id=voided.pk, usage={**usage, "request_id": "req-2"})
    hold_place(org_id=org.pk, currency="RMB", amount="1")
    return org


def _failed(report) -> set[str]:
    return {name for name, count in report.checks.items() if count}


def _run_command(*args) -> tuple[list[str], int]:
    from io import StringIO

    out = StringIO()
    code = 0
    try:
        call_command("reconcile", *args, stdout=out)
    except CommandError as exc:
        code = exc.returncode
    return out.getvalue().strip().splitlines(), code


def test_a_clean_ledger_reconciles_and_the_command_prints_json_last(busy_org):
    report = reconcile()
    assert report.ok, report.problems
    assert report.counts["open_holds"] == 1
    lines, code = _run_command()
    assert code == 0
    summary = json.loads(lines[-1])
    assert summary["ok"] is True and summary["failed_checks"] == []


def test_an_unbalanced_transaction_is_reported_and_the_command_exits_1(busy_org):
    txn = Transaction.objects.create(org=None, kind="adjustment")
    Posting.objects.create(
        transaction=txn,
        account=system_account(currency="CREDIT", kind=AccountKind.GRANTS),
        currency="CREDIT",
        amount=Decimal("1"),
    )
    assert {"transaction_balanced", "transaction_has_postings", "currency_total"} <= _failed(
        reconcile()
    )
    lines, code = _run_command()
    assert code == 1
    assert any(line.startswith("FAIL [transaction_balanced]") for line in lines)
    summary = json.loads(lines[-1])
    assert summary["ok"] is False and "transaction_balanced" in summary["failed_checks"]


def test_a_posting_in_the_wrong_currency_is_reported(busy_org):
    txn = Transaction.objects.create(org=None, kind="adjustment")
    Posting.objects.bulk_create(
        [
            Posting(
                transaction=txn,
                account=system_account(currency="CREDIT", kind=AccountKind.GRANTS),
                currency="RMB",
                amount=Decimal("1"),
            ),
            Posting(
                transaction=txn,
                account=system_account(currency="RMB", kind=AccountKind.GRANTS),
                currency="RMB",
                amount=Decimal("-1"),
            ),
        ]
    )
    assert "posting_currency" in _failed(reconcile())


def test_a_wallet_whose_posted_differs_from_its_postings_is_reported(busy_org):
    Account.objects.filter(pk=wallet(busy_org).pk).update(posted=F("posted") + 1)
    report = reconcile()
    assert _failed(report) == {"wallet_posted"}
    assert report.problems[0].detail["wallet"] == wallet(busy_org).pk


def test_held_that_is_not_the_sum_of_open_holds_is_reported(busy_org):
    Account.objects.filter(pk=wallet(busy_org, "RMB").pk).update(held=Decimal("0.5"))
    assert _failed(reconcile()) == {"wallet_held"}


@pytest.mark.postgres_only
def test_available_below_zero_is_reported(busy_org):
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending FK checks before ALTER
        cursor.execute("ALTER TABLE ledger_account DROP CONSTRAINT wallet_available_non_negative")
    w = wallet(busy_org, "RMB")
    Hold.objects.filter(wallet=w).update(amount=Decimal("7"))
    Account.objects.filter(pk=w.pk).update(held=Decimal("7"))
    assert _failed(reconcile()) == {"wallet_available"}


def test_budget_counters_that_disagree_with_their_holds_are_reported(busy_org):
    BudgetCounter.objects.update(spent=F("spent") + Decimal("0.1"))
    assert _failed(reconcile()) == {"budget_counter"}


def test_a_hold_captured_without_its_settlement_is_reported(busy_org, project):
    hold = hold_place(org_id=busy_org.pk, currency="CREDIT", amount="1", project_id=project.pk)
    Hold.objects.filter(pk=hold.pk).update(status=HoldStatus.CAPTURED, captured_amount="1")
    failed = _failed(reconcile())
    assert "hold_resolution" in failed  # and the wallet's held no longer matches
    assert "wallet_held" in failed


def test_a_usage_record_both_settled_and_still_held_is_reported(busy_org):
    hold = hold_place(org_id=busy_org.pk, currency="CREDIT", amount="1")
    UsageRecord.objects.create(
        request_id="req-twice",
        org=busy_org,
        model="m",
        status=UsageStatus.SETTLED,
        hold=hold,
    )
    assert _failed(reconcile()) == {"usage_state"}


def test_a_system_account_with_a_cached_balance_is_reported(busy_org):
    grants = system_account(currency="CREDIT", kind=AccountKind.GRANTS)
    Account.objects.filter(pk=grants.pk).update(posted=Decimal("1"))
    assert _failed(reconcile()) == {"system_account_balance"}


def test_a_transaction_that_moves_another_orgs_wallet_is_reported(busy_org):
    other = OrganizationFactory()
    txn = Transaction.objects.create(org=busy_org, kind="adjustment")
    Posting.objects.bulk_create(
        [
            Posting(transaction=txn, account=wallet(other), currency="CREDIT", amount=1),
            Posting(
                transaction=txn,
                account=system_account(currency="CREDIT", kind=AccountKind.ADJUSTMENTS),
                currency="CREDIT",
                amount=-1,
            ),
        ]
    )
    Account.objects.filter(pk=wallet(other).pk).update(posted=1)
    assert _failed(reconcile()) == {"posting_tenant"}


def test_org_scope_checks_only_that_organization(busy_org):
    other = OrganizationFactory(slug="other-org")
    ProjectFactory(org=other)
    fund(other, "CREDIT", "3")
    Account.objects.filter(pk=wallet(other).pk).update(posted=F("posted") + 1)
    assert reconcile(org=busy_org).ok
    assert _failed(reconcile(org=other)) == {"wallet_posted"}
    lines, code = _run_command("--org", "other-org")
    assert code == 1 and json.loads(lines[-1])["org"] == "other-org"
    _, code = _run_command("--org", busy_org.slug)
    assert code == 0


def test_unknown_org_is_an_error():
    with pytest.raises(CommandError):
        call_command("reconcile", "--org", "nope")


@pytest.mark.postgres_only
@pytest.mark.parametrize(
    "statement", ["UPDATE {table} SET {column} = {column}", "DELETE FROM {table}"]
)
@pytest.mark.parametrize(
    "table,column",
    [
        ("ledger_posting", "amount"),
        ("ledger_transaction", "reason"),
        ("ledger_usagerecord", "cost"),
    ],
)
def test_the_database_refuses_updates_and_deletes_of_ledger_rows(
    busy_org, statement, table, column
):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {table}")
        assert cursor.fetchone()[0] > 0
        with (
            pytest.raises(IntegrityError, match="ledger rows are immutable"),
            transaction.atomic(),
        ):
            cursor.execute(statement.format(table=table, column=column))


def test_the_model_layer_refuses_too(busy_org):
    posting = Posting.objects.first()
    with pytest.raises(TypeError):
        posting.save()
    with pytest.raises(TypeError):
        Posting.objects.all().delete()


def test_a_hold_on_a_budget_of_another_currency_is_reported(busy_org, project):
    fund(busy_org, "RMB", "5")
    rmb = budget_set(org=busy_org, project=project, currency="RMB", amount="5", period="day")
    hold = hold_place(org_id=busy_org.pk, currency="CREDIT", amount="1", project_id=project.pk)
    credit_counter = BudgetCounter.objects.get(pk=hold.project_counter_id)
    rmb_counter = BudgetCounter.objects.create(budget=rmb, period_start=credit_counter.period_start)
    Hold.objects.filter(pk=hold.pk).update(project_counter=rmb_counter)
    BudgetCounter.objects.filter(pk=rmb_counter.pk).update(reserved=1)
    BudgetCounter.objects.filter(pk=credit_counter.pk).update(reserved=F("reserved") - 1)
    assert _failed(reconcile()) == {"hold_scope"}


def test_a_usage_record_paid_from_another_wallet_than_its_hold_is_reported(busy_org):
    hold = hold_place(org_id=busy_org.pk, currency="RMB", amount="1")
    hold_void(hold_id=hold.pk)
    UsageRecord.objects.create(
        request_id="req-wrong-wallet",
        org=busy_org,
        model="m",
        wallet="CREDIT",
        status=UsageStatus.FAILED,
        hold=hold,
    )
    assert _failed(reconcile()) == {"usage_state"}
