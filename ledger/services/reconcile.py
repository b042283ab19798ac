"""Check every ledger invariant with a handful of aggregate queries (never per-row Python).

Each check is one SQL statement that returns only the rows that break it, so a clean ledger
of millions of rows costs a few sequential scans and a correct answer. `reconcile(org=...)`
limits every check to one organization (system accounts are checked only globally, since
they belong to nobody). Each check compares both sides in one statement, i.e. one snapshot,
so it is safe to run against a live gateway: an in-flight capture is seen whole or not at all.

What "records say" means here: a wallet's `posted` is the sum of its postings; its `held` is
the sum of its pending holds; a budget counter's `reserved` is the sum of the pending holds
placed on it and its `spent` the sum of what its captured holds charged. Refunds and
adjustments move wallets, not budget counters: a budget limits usage, not net spend.
"""

# ruff: noqa: S608 - every interpolated piece is a model's table name or a constant SQL
# fragment from this module; the only value (the organization id) is passed as a parameter.
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection

from accounts.models import Organization
from ledger.models import (
    Account,
    Budget,
    BudgetCounter,
    Hold,
    Posting,
    Transaction,
    UsageRecord,
)

DETAIL_LIMIT = 50  # rows of detail kept per failed check; its count stops at 51 ("more")


@dataclass(frozen=True)
class Problem:
    check: str
    detail: dict[str, Any]

    def __str__(self) -> str:
        parts = ", ".join(f"{key}={value}" for key, value in self.detail.items())
        return f"[{self.check}] {parts}"


@dataclass
class Report:
    org: str | None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    checks: dict[str, int] = field(default_factory=dict)  # check -> rows that break it
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "org": self.org,
            "failed_checks": sorted(name for name, n in self.checks.items() if n),
            "checks": self.checks,
            "problems": len(self.problems),
            "warnings": len(self.warnings),
            "counts": self.counts,
        }


def _tables() -> dict[str, str]:
    return {
        "account": Account._meta.db_table,
        "txn": Transaction._meta.db_table,
        "posting": Posting._meta.db_table,
        "hold": Hold._meta.db_table,
        "budget": Budget._meta.db_table,
        "counter": BudgetCounter._meta.db_table,
        "usage": UsageRecord._meta.db_table,
    }


def _differs(left: str, right: str) -> str:
    """Exact on PostgreSQL (numeric); SQLite stores decimals as floats, so allow rounding."""
    if connection.vendor == "postgresql":
        return f"({left}) <> ({right})"
    return f"ABS(({left}) - ({right})) > 0.00000001"


def _checks(scoped: bool) -> list[tuple[str, str, list[str], bool]]:
    """(name, sql, column names, is_warning); `{org}` clauses are empty when unscoped."""
    d = _differs
    wallet_sums = """
        SELECT p.account_id, SUM(p.amount) AS total
          FROM {posting} p JOIN {account} a ON a.id = p.account_id
         WHERE a.kind IN ('wallet', 'allowance') {org_a}
         GROUP BY p.account_id"""
    tenant = """SELECT p.id, p.transaction_id, t.org_id, a.org_id
                  FROM {posting} p JOIN {account} a ON a.id = p.account_id
                  JOIN {txn} t ON t.id = p.transaction_id
                 WHERE a.kind IN ('wallet', 'allowance') AND (t.org_id IS NULL OR t.org_id <> a.org_id)"""
    checks = [
        (
            "transaction_balanced",
            """SELECT p.transaction_id, p.currency, SUM(p.amount)
                 FROM {posting} p JOIN {txn} t ON t.id = p.transaction_id
                WHERE 1 = 1 {org_t}
                GROUP BY p.transaction_id, p.currency
               HAVING """
            + d("SUM(p.amount)", "0"),
            ["transaction", "currency", "sum"],
            False,
        ),
        (
            "transaction_has_postings",
            """SELECT t.id, COUNT(p.id)
                 FROM {txn} t LEFT JOIN {posting} p ON p.transaction_id = t.id
                WHERE 1 = 1 {org_t}
                GROUP BY t.id HAVING COUNT(p.id) < 2""",
            ["transaction", "postings"],
            False,
        ),
        (
            "posting_currency",
            """SELECT p.id, p.transaction_id, p.currency, a.currency
                 FROM {posting} p JOIN {account} a ON a.id = p.account_id
                 JOIN {txn} t ON t.id = p.transaction_id
                WHERE p.currency <> a.currency {org_t}""",
            ["posting", "transaction", "posting_currency", "account_currency"],
            False,
        ),
        (
            "posting_tenant",  # a transaction only moves its own organization's wallets
            tenant if not scoped else f"{tenant} {{org_t}} UNION {tenant} {{org_a}}",
            ["posting", "transaction", "transaction_org", "wallet_org"],
            False,
        ),
        (
            "wallet_posted",
            "SELECT a.id, a.org_id, a.currency, a.posted, COALESCE(s.total, 0)"
            " FROM {account} a LEFT JOIN (" + wallet_sums + ") s ON s.account_id = a.id"
            " WHERE a.kind IN ('wallet', 'allowance') {org_a} AND "
            + d("a.posted", "COALESCE(s.total, 0)"),
            ["wallet", "org", "currency", "posted", "sum_of_postings"],
            False,
        ),
        (
            "wallet_held",
            """SELECT a.id, a.org_id, a.currency, a.held, COALESCE(h.total, 0)
                 FROM {account} a LEFT JOIN (
                      SELECT wallet_id, SUM(amount) AS total FROM {hold} h
                       WHERE status = 'pending' {org_h} GROUP BY wallet_id
                 ) h ON h.wallet_id = a.id
                WHERE a.kind IN ('wallet', 'allowance') {org_a} AND """
            + d("a.held", "COALESCE(h.total, 0)"),
            ["wallet", "org", "currency", "held", "sum_of_open_holds"],
            False,
        ),
        (
            "wallet_available",
            """SELECT a.id, a.org_id, a.currency, a.posted, a.held
                 FROM {account} a
                WHERE a.kind IN ('wallet', 'allowance') {org_a} AND (a.posted < a.held OR a.held < 0)""",
            ["wallet", "org", "currency", "posted", "held"],
            False,
        ),
        (
            "budget_counter",
            """SELECT c.id, c.budget_id, c.period_start, c.reserved, COALESCE(h.reserved, 0),
                      c.spent, COALESCE(h.spent, 0)
                 FROM {counter} c JOIN {budget} b ON b.id = c.budget_id
                 LEFT JOIN (
                      SELECT counter_id,
                             SUM(CASE WHEN status = 'pending' THEN amount ELSE 0 END) AS reserved,
                             SUM(CASE WHEN status = 'captured'
                                      THEN COALESCE(captured_amount, 0) ELSE 0 END) AS spent
                        FROM (SELECT project_counter_id AS counter_id, status, amount,
                                     captured_amount
                                FROM {hold} h WHERE project_counter_id IS NOT NULL {org_h}
                              UNION ALL
                              SELECT key_counter_id, status, amount, captured_amount
                                FROM {hold} h WHERE key_counter_id IS NOT NULL {org_h}
                              UNION ALL
                              SELECT run_counter_id, status, amount, captured_amount
                                FROM {hold} h WHERE run_counter_id IS NOT NULL {org_h}) x
                       GROUP BY counter_id
                 ) h ON h.counter_id = c.id
                WHERE 1 = 1 {org_b} AND ("""
            + d("c.reserved", "COALESCE(h.reserved, 0)")
            + " OR "
            + d("c.spent", "COALESCE(h.spent, 0)")
            + ")",
            [
                "counter",
                "budget",
                "period_start",
                "reserved",
                "open_holds",
                "spent",
                "captured_holds",
            ],
            False,
        ),
        (
            "hold_resolution",  # resolved exactly once: one settlement, captured <= held
            """SELECT h.id, h.status, h.amount, h.captured_amount, t.id, w.total
                 FROM {hold} h
                 LEFT JOIN {txn} t ON t.hold_id = h.id
                 LEFT JOIN (
                      SELECT p.transaction_id, SUM(p.amount) AS total
                        FROM {posting} p
                       WHERE p.account_id IN (
                             SELECT a.id FROM {account} a WHERE a.kind IN ('wallet', 'allowance') {org_a})
                       GROUP BY p.transaction_id
                 ) w ON w.transaction_id = t.id
                WHERE 1 = 1 {org_h} AND (
                      h.status NOT IN ('pending', 'captured', 'voided', 'expired')
                   OR (h.status IN ('pending', 'voided', 'expired')
                       AND (t.id IS NOT NULL OR COALESCE(h.captured_amount, 0) <> 0))
                   OR (h.status = 'captured' AND (
                          h.captured_amount IS NULL
                       OR h.captured_amount > h.amount
                       OR (h.captured_amount > 0 AND t.id IS NULL)
                       OR (t.id IS NOT NULL AND """
            + d("COALESCE(w.total, 0)", "-h.captured_amount")
            + """))))""",
            ["hold", "status", "amount", "captured", "transaction", "wallet_legs"],
            False,
        ),
        (
            "hold_scope",  # a hold reserves its own org's wallet and budgets in one currency
            """SELECT h.id, h.org_id, w.org_id, c.id, b.org_id, b.currency, w.currency
                 FROM {hold} h JOIN {account} w ON w.id = h.wallet_id
                 LEFT JOIN (
                      SELECT h.id AS hold_id, h.project_counter_id AS counter_id FROM {hold} h
                       WHERE h.project_counter_id IS NOT NULL {org_h}
                      UNION ALL
                      SELECT h.id, h.key_counter_id FROM {hold} h
                       WHERE h.key_counter_id IS NOT NULL {org_h}
                      UNION ALL
                      SELECT h.id, h.run_counter_id FROM {hold} h
                       WHERE h.run_counter_id IS NOT NULL {org_h}
                 ) hc ON hc.hold_id = h.id
                 LEFT JOIN {counter} c ON c.id = hc.counter_id
                 LEFT JOIN {budget} b ON b.id = c.budget_id
                WHERE 1 = 1 {org_h} AND (
                      w.kind NOT IN ('wallet', 'allowance') OR w.org_id <> h.org_id
                   OR b.org_id <> h.org_id OR b.currency <> w.currency)""",
            [
                "hold",
                "org",
                "wallet_org",
                "counter",
                "budget_org",
                "budget_currency",
                "wallet_currency",
            ],
            False,
        ),
        (
            "usage_state",  # settled, failed or still held: exactly one of these
            """SELECT u.id, u.request_id, u.status, h.status, u.transaction_id, u.cost
                 FROM {usage} u LEFT JOIN {hold} h ON h.id = u.hold_id
                 LEFT JOIN {account} ha ON ha.id = h.wallet_id
                 LEFT JOIN {txn} t ON t.id = u.transaction_id
                WHERE 1 = 1 {org_u} AND (
                      u.status NOT IN ('settled', 'failed')
                   OR h.status = 'pending'
                   OR h.org_id <> u.org_id
                   OR t.org_id <> u.org_id
                   OR (u.wallet <> '' AND ha.currency <> u.wallet)
                   OR (u.status = 'settled' AND h.id IS NOT NULL AND h.status <> 'captured')
                   OR (u.status = 'settled' AND u.cost > 0 AND u.transaction_id IS NULL)
                   OR (u.status = 'failed' AND (u.transaction_id IS NOT NULL OR u.cost <> 0
                       OR h.status NOT IN ('voided', 'expired')))
                   OR (h.id IS NOT NULL AND t.id IS NOT NULL
                       AND (t.hold_id IS NULL OR t.hold_id <> h.id)))""",
            ["usage", "request_id", "status", "hold_status", "transaction", "cost"],
            False,
        ),
        (
            "budget_over_limit",  # legitimate only after an operator lowered the limit
            """SELECT c.id, b.id, c.period_start, b.amount, c.spent, c.reserved
                 FROM {counter} c JOIN {budget} b ON b.id = c.budget_id
                WHERE 1 = 1 {org_b} AND c.spent + c.reserved > b.amount""",
            ["counter", "budget", "period_start", "limit", "spent", "reserved"],
            True,
        ),
        (
            "hold_overdue",  # the expiry sweep has not run yet; funds are locked until it does
            """SELECT h.id, h.wallet_id, h.amount, h.expires_at
                 FROM {hold} h
                WHERE h.status = 'pending' AND h.expires_at < CURRENT_TIMESTAMP {org_h}""",
            ["hold", "wallet", "amount", "expires_at"],
            True,
        ),
    ]
    if not scoped:
        checks += [
            (
                "system_account_balance",  # system accounts carry no cached balance
                """SELECT a.id, a.kind, a.currency, a.posted, a.held FROM {account} a
                    WHERE a.org_id IS NULL AND (a.kind IN ('wallet', 'allowance') OR """
                + d("a.posted", "0")
                + " OR "
                + d("a.held", "0")
                + ")",
                ["account", "kind", "currency", "posted", "held"],
                False,
            ),
            (
                "currency_total",  # all postings of a currency net to zero
                "SELECT p.currency, SUM(p.amount) FROM {posting} p GROUP BY p.currency HAVING "
                + d("SUM(p.amount)", "0"),
                ["currency", "sum"],
                False,
            ),
        ]
    return checks


def _org_clauses(org_id: int | None) -> dict[str, str]:
    aliases = {"org_a": "a", "org_t": "t", "org_h": "h", "org_b": "b", "org_u": "u"}
    if org_id is None:
        return {name: "" for name in aliases}
    return {name: f"AND {alias}.org_id = %(org)s" for name, alias in aliases.items()}


def _value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if value is None or isinstance(value, int | str | bool):
        return value
    return str(value)


def reconcile(org: Organization | int | str | None = None) -> Report:
    """Run every invariant check; `report.ok` is False when any (non-warning) check fails."""
    org_obj = _org(org)
    org_id = org_obj.pk if org_obj is not None else None
    report = Report(org=org_obj.slug if org_obj is not None else None)
    clauses = _org_clauses(org_id)
    names = {**_tables(), **clauses}
    params = {"org": org_id} if org_id is not None else None
    with connection.cursor() as cursor:
        for name, sql, columns, warning in _checks(scoped=org_id is not None):
            query = sql.format(**names)
            # MATERIALIZED plans the check on its own: under a bare LIMIT, PostgreSQL picks
            # fast-start nested loops that crawl when (as usual) no row breaks the check.
            fence = "MATERIALIZED " if connection.vendor == "postgresql" else ""
            cursor.execute(
                f"WITH q AS {fence}({query}) SELECT * FROM q LIMIT {DETAIL_LIMIT + 1}", params
            )
            rows = cursor.fetchall()
            target = report.warnings if warning else report.problems
            for row in rows[:DETAIL_LIMIT]:
                target.append(
                    Problem(check=name, detail=dict(zip(columns, map(_value, row), strict=True)))
                )
            if not warning:
                report.checks[name] = len(rows)
        report.counts = _counts(cursor, names, params)
    return report


def _counts(cursor, names: dict[str, str], params: dict) -> dict[str, int]:
    sql = """SELECT
        (SELECT COUNT(*) FROM {account} a WHERE a.kind = 'wallet' {org_a}),
        (SELECT COUNT(*) FROM {txn} t WHERE 1 = 1 {org_t}),
        (SELECT COUNT(*) FROM {hold} h WHERE h.status = 'pending' {org_h}),
        (SELECT COUNT(*) FROM {usage} u WHERE 1 = 1 {org_u})"""
    cursor.execute(sql.format(**names), params)
    wallets, transactions, open_holds, usage = cursor.fetchone()
    return {
        "wallets": wallets,
        "transactions": transactions,
        "open_holds": open_holds,
        "usage_records": usage,
    }


def _org(org: Organization | int | str | None) -> Organization | None:
    if org is None or isinstance(org, Organization):
        return org
    if isinstance(org, int):
        return Organization.objects.get(pk=org)
    return Organization.objects.get(slug=org)
