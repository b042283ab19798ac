"""Two-phase holds: reserve against a wallet and its budgets, then capture or void once.

Every reservation is a conditional UPDATE on the row it changes (never read-then-write);
under PostgreSQL's READ COMMITTED a blocked UPDATE re-checks its WHERE clause against the
newly committed row, so concurrent holds can never overdraw a wallet or a budget.
Rows are locked in one order everywhere: wallet, then its budget counters (project, key), so
every change to an org's counters in a currency happens under that wallet's row lock.

On PostgreSQL each public function is one SQL statement (see "PostgreSQL fast path" below);
the gateway runs the same statements on the event loop (routing/engine.py, routing/db.py),
and places holds and captures them in batches on a hot wallet ("... in batches" below).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import orjson
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F, Q, Value
from django.utils import timezone

from ledger.errors import BudgetExceeded, InsufficientBalance, InvalidAmount
from ledger.models import (
    Account,
    AccountKind,
    Budget,
    BudgetAlert,
    BudgetCounter,
    Hold,
    HoldStatus,
    Posting,
    Transaction,
    TransactionKind,
    UsageRecord,
    UsageStatus,
)
from ledger.money import ZERO, Currency, to_money
from ledger.periods import period_start
from ledger.services.budgets import counter_for
from ledger.services.postings import system_account

_WALLET_IDS: dict[tuple[int, str], int] = {}  # wallets are never re-created, so ids are cacheable


@dataclass(frozen=True)
class Settlement:
    hold: Hold
    transaction: Transaction | None
    usage_record: UsageRecord | None
    created: bool  # False: the hold was already resolved; this is the first result


def _wallet_id(org_id: int, currency: str) -> int:
    key = (org_id, currency)
    wallet_id = _WALLET_IDS.get(key)
    if wallet_id is None:
        wallet_id = (
            Account.objects.only("pk")
            .get(org_id=org_id, currency=currency, kind=AccountKind.WALLET)
            .pk
        )
        _WALLET_IDS[key] = wallet_id
    return wallet_id


def _wallet_reserve(org_id: int, currency: str, amount: Decimal) -> int:
    """`UPDATE ... SET held = held + x WHERE posted >= held + x`; returns the wallet id."""
    for attempt in range(2):
        wallet_id = _wallet_id(org_id, currency)
        reserved = Account.objects.filter(
            pk=wallet_id, org_id=org_id, posted__gte=F("held") + amount
        ).update(held=F("held") + amount)
        if reserved == 1:
            return wallet_id
        if attempt == 0 and not Account.objects.filter(pk=wallet_id, org_id=org_id).exists():
            _WALLET_IDS.pop((org_id, currency), None)  # a stale cache entry (tests recreate orgs)
            continue
        break
    raise InsufficientBalance(currency)


def hold_place(
    *,
    org_id: int,
    currency: str,
    amount: Decimal,
    project_id: int | None = None,
    api_key_id: int | None = None,
    request_id: str = "",
    ttl_seconds: int | None = None,
    hold_id: UUID | None = None,
    researcher_run_id: UUID | None = None,
) -> Hold:
    """Reserve `amount` on the org's wallet in `currency` and on every budget that applies.

    Raises InsufficientBalance or BudgetExceeded (naming the budget); then nothing is reserved.
    `hold_id` lets a caller that may be cancelled mid-call know which hold to void.
    `researcher_run_id`: an AI Researcher step; its run's budget is reserved against too.
    """
    amount = to_money(amount)
    if amount < 0:
        raise InvalidAmount("a hold amount must be zero or more")
    now = timezone.now()
    ttl = ttl_seconds if ttl_seconds is not None else settings.HOLD_TTL_SECONDS
    hold_id = hold_id or uuid4()
    if _fast():
        sql, params = place_statement(
            hold_id=hold_id,
            org_id=org_id,
            currency=currency,
            amount=amount,
            project_id=project_id,
            api_key_id=api_key_id,
            request_id=request_id,
            now=now,
            ttl=ttl,
            researcher_run_id=researcher_run_id,
        )
        try:
            row = _execute_one(sql, params)
            outcome = place_outcome(row)
        except DatabaseError as exc:
            outcome = place_refusal(exc)
            if outcome is None:
                raise
            if outcome == "budget":
                outcome = "orm"  # the ORM path names the budget that refused
        if outcome == "placed":
            return _instance(
                Hold,
                id=hold_id,
                org_id=org_id,
                wallet_id=row[3],
                amount=amount,
                status=HoldStatus.PENDING,
                project_counter_id=row[4],
                key_counter_id=row[5],
                request_id=request_id,
                expires_at=params["expires"],
                created_at=now,
            )
        if outcome == "insufficient" and researcher_run_id is None:
            raise InsufficientBalance(currency)
    with transaction.atomic():
        wallet_id = None
        if researcher_run_id is not None:  # the monthly allowance pays first
            wallet_id = _allowance_reserve(org_id=org_id, currency=currency, amount=amount)
        if wallet_id is None:
            wallet_id = _wallet_id(org_id, currency)
            reserved = Account.objects.filter(pk=wallet_id, posted__gte=F("held") + amount).update(
                held=F("held") + amount
            )
            if reserved != 1:
                raise InsufficientBalance(currency)
        counters = _reserve_budgets(
            currency=currency,
            amount=amount,
            project_id=project_id,
            api_key_id=api_key_id,
            now=now,
            researcher_run_id=researcher_run_id,
        )
        return Hold.objects.create(
            id=hold_id,
            org_id=org_id,
            wallet_id=wallet_id,
            amount=amount,
            project_counter_id=counters.get("project"),
            key_counter_id=counters.get("key"),
            run_counter_id=counters.get("run"),
            request_id=request_id,
            expires_at=now + timedelta(seconds=ttl),
        )


def _allowance_reserve(*, org_id: int, currency: str, amount: Decimal) -> int | None:
    """Reserve on the org's researcher allowance when it can pay the whole hold."""
    allowance = Account.objects.filter(
        org_id=org_id, currency=currency, kind=AccountKind.ALLOWANCE
    ).values_list("pk", flat=True)
    for account_id in allowance:
        if Account.objects.filter(pk=account_id, posted__gte=F("held") + amount).update(
            held=F("held") + amount
        ):
            return account_id
    return None


def _instance(model_class, /, **values):
    """A model instance for a row the fast path just wrote (no second query to read it)."""
    obj = model_class(**values)
    obj._state.adding = False
    obj._state.db = "default"
    return obj


def _execute_one(sql: str, params: dict):
    """One statement on Django's connection: autocommit on its own, or a savepoint inside a
    caller's transaction (so a refused hold does not abort the caller's work)."""
    if connection.in_atomic_block:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _reserve_budgets(
    *, currency: str, amount: Decimal, project_id, api_key_id, now, researcher_run_id=None
) -> dict[str, int]:
    owners = Q()
    if project_id is not None:
        owners |= Q(project_id=project_id)
    if api_key_id is not None:
        owners |= Q(api_key_id=api_key_id)
    if researcher_run_id is not None:
        owners |= Q(researcher_run_id=researcher_run_id)
    if not owners:
        return {}
    budgets = sorted(
        Budget.objects.filter(owners, currency=currency, removed_at__isnull=True),
        key=_budget_scope_order,  # project, key, run: one lock order everywhere
    )
    counters: dict[str, int] = {}
    for budget in budgets:
        scope = "project" if budget.project_id else "key" if budget.api_key_id else "run"
        counter = counter_for(budget=budget, moment=now)
        ok = BudgetCounter.objects.filter(
            pk=counter.pk, spent__lte=Value(budget.amount - amount) - F("reserved")
        ).update(reserved=F("reserved") + amount)
        if ok != 1:
            raise BudgetExceeded(
                scope=scope, budget_id=budget.pk, currency=currency, period=budget.period
            )
        counters[scope] = counter.pk
    return counters


def _budget_scope_order(budget: Budget) -> int:
    return 0 if budget.project_id else 1 if budget.api_key_id else 2


def hold_capture(
    *, hold_id: UUID | str, amount: Decimal, usage: dict[str, Any] | None = None
) -> Settlement:
    """Charge the actual cost (`amount`) and release the rest of the hold, exactly once.

    A cost above the hold captures the whole hold and books the excess to the shortfall
    account, so the wallet never overdraws. A second call returns the first result.
    """
    cost = to_money(amount)
    if cost < 0:
        raise InvalidAmount("a capture amount must be zero or more")
    now = timezone.now()
    if _fast():
        sql, params = capture_statement(hold_id=hold_id, cost=cost, usage=usage, now=now)
        try:
            row = _execute_one(sql, params)
        except IntegrityError as exc:
            if not capture_missing_system_account(exc):
                raise
            system_accounts_ensure()
            row = _execute_one(sql, params)
        if row is None:
            return _settlement_of(hold_id)  # already resolved (or unknown: DoesNotExist)
        hold = _instance(
            Hold,
            id=row[0],
            org_id=row[1],
            wallet_id=row[2],
            amount=row[3],
            status=HoldStatus.CAPTURED,
            captured_amount=row[4],
            project_counter_id=row[5],
            key_counter_id=row[6],
            resolved_at=now,
        )
        txn = None
        if row[7] is not None:
            txn = _instance(
                Transaction, id=row[7], org_id=row[1], kind=TransactionKind.USAGE, hold_id=row[0]
            )
        record = None
        if row[8] is not None:
            record = _instance(
                UsageRecord,
                **usage,
                id=row[8],
                org_id=row[1],
                cost=cost,
                status=UsageStatus.SETTLED,
                hold_id=row[0],
                transaction_id=row[7],
            )
        if row[11]:
            threshold_alerts_record(counter_ids=list(row[11]))
        return Settlement(hold=hold, transaction=txn, usage_record=record, created=True)
    with transaction.atomic():
        hold = Hold.objects.get(pk=hold_id)
        charge = min(cost, hold.amount)
        won = Hold.objects.filter(pk=hold.pk, status=HoldStatus.PENDING).update(
            status=HoldStatus.CAPTURED, captured_amount=charge, resolved_at=now
        )
        if won != 1:
            return _settlement_of(hold.pk)
        Account.objects.filter(pk=hold.wallet_id).update(
            held=F("held") - hold.amount, posted=F("posted") - charge
        )
        counter_ids = _counter_ids(hold)
        if counter_ids:
            BudgetCounter.objects.filter(pk__in=counter_ids).update(
                reserved=F("reserved") - hold.amount, spent=F("spent") + charge
            )
        txn = None
        if cost > ZERO:
            txn = _usage_transaction(hold=hold, charge=charge, cost=cost)
        record = None
        if usage is not None:
            record = UsageRecord.objects.create(
                **usage,
                org_id=hold.org_id,
                cost=cost,
                status=UsageStatus.SETTLED,
                hold_id=hold.pk,
                transaction=txn,
            )
        if counter_ids:
            _record_threshold_alerts(counter_ids)
        hold.status, hold.captured_amount, hold.resolved_at = HoldStatus.CAPTURED, charge, now
        return Settlement(hold=hold, transaction=txn, usage_record=record, created=True)


def threshold_alerts_record(*, counter_ids: list[int]) -> None:
    """The fast path's capture names the counters that may have crossed their soft threshold;
    the alert itself (rare) goes through the ORM, once per budget and period."""
    with transaction.atomic():
        _record_threshold_alerts(counter_ids)


def _usage_transaction(*, hold: Hold, charge: Decimal, cost: Decimal) -> Transaction:
    wallet = Account.objects.only("pk", "currency").get(pk=hold.wallet_id)
    currency = wallet.currency
    txn = Transaction.objects.create(
        org_id=hold.org_id, kind=TransactionKind.USAGE, hold_id=hold.pk
    )
    legs = [
        Posting(transaction=txn, account_id=wallet.pk, currency=currency, amount=-charge),
        Posting(
            transaction=txn,
            account=system_account(currency=currency, kind=AccountKind.USAGE_REVENUE),
            currency=currency,
            amount=cost,
        ),
    ]
    if cost > charge:  # the upstream billed more than we reserved: we absorb it, visibly
        legs.append(
            Posting(
                transaction=txn,
                account=system_account(currency=currency, kind=AccountKind.SHORTFALL),
                currency=currency,
                amount=-(cost - charge),
            )
        )
    Posting.objects.bulk_create(legs)
    return txn


def _record_threshold_alerts(counter_ids: list[int]) -> None:
    """Once per budget and period, when spend crosses the soft threshold."""
    for counter in BudgetCounter.objects.filter(
        pk__in=counter_ids, alerted_at__isnull=True
    ).select_related("budget"):
        budget = counter.budget
        if budget.amount <= 0 or counter.spent < budget.amount * budget.soft_threshold:
            continue
        if (
            BudgetCounter.objects.filter(pk=counter.pk, alerted_at__isnull=True).update(
                alerted_at=timezone.now()
            )
            == 1
        ):
            alert = BudgetAlert.objects.create(
                org_id=budget.org_id,
                budget=budget,
                period_start=counter.period_start,
                threshold=budget.soft_threshold,
                spent=counter.spent,
            )
            transaction.on_commit(lambda alert_id=alert.pk: _queue_alert_email(alert_id))


def _queue_alert_email(alert_id: int) -> None:
    from ledger.tasks import budget_alert_email

    budget_alert_email.delay(alert_id)


def hold_void(
    *, hold_id: UUID | str, usage: dict[str, Any] | None = None, expired: bool = False
) -> Settlement:
    """Release the whole hold, exactly once; `usage` records the failed request (cost 0)."""
    now = timezone.now()
    status = HoldStatus.EXPIRED if expired else HoldStatus.VOIDED
    if _fast():
        sql, params = void_statement(hold_id=hold_id, usage=usage, expired=expired, now=now)
        row = _execute_one(sql, params)
        if row is None:
            return _settlement_of(hold_id)
        hold = _instance(
            Hold,
            id=row[0],
            org_id=row[1],
            wallet_id=row[2],
            amount=row[3],
            status=status,
            project_counter_id=row[4],
            key_counter_id=row[5],
            resolved_at=now,
        )
        record = None
        if row[6] is not None:
            record = _instance(
                UsageRecord,
                **usage,
                id=row[6],
                org_id=row[1],
                cost=ZERO,
                status=UsageStatus.FAILED,
                hold_id=row[0],
            )
        return Settlement(hold=hold, transaction=None, usage_record=record, created=True)
    with transaction.atomic():
        hold = Hold.objects.get(pk=hold_id)
        won = Hold.objects.filter(pk=hold.pk, status=HoldStatus.PENDING).update(
            status=status, resolved_at=now
        )
        if won != 1:
            return _settlement_of(hold.pk)
        _release(hold)
        record = None
        if usage is not None:
            record = UsageRecord.objects.create(
                **usage, org_id=hold.org_id, cost=ZERO, status=UsageStatus.FAILED, hold_id=hold.pk
            )
        hold.status, hold.resolved_at = status, now
        return Settlement(hold=hold, transaction=None, usage_record=record, created=True)


def _release(hold: Hold) -> None:
    Account.objects.filter(pk=hold.wallet_id).update(held=F("held") - hold.amount)
    counter_ids = _counter_ids(hold)
    if counter_ids:
        BudgetCounter.objects.filter(pk__in=counter_ids).update(
            reserved=F("reserved") - hold.amount
        )


def _counter_ids(hold: Hold) -> list[int]:
    counters = (hold.project_counter_id, hold.key_counter_id, hold.run_counter_id)
    return [c for c in counters if c]


def _settlement_of(hold_pk) -> Settlement:
    hold = Hold.objects.get(pk=hold_pk)
    txn = Transaction.objects.filter(hold_id=hold_pk).first()
    record = UsageRecord.objects.filter(hold_id=hold_pk).first()
    return Settlement(hold=hold, transaction=txn, usage_record=record, created=False)


def hold_keepalive(*, hold_id: UUID | str, ttl_seconds: int | None = None) -> bool:
    """Push a live request's hold expiry forward; False if it was already resolved."""
    from ledger.services.safeguards import hold_checkpoint

    return hold_checkpoint(hold_id=hold_id, ttl_seconds=ttl_seconds)


def holds_expire(*, limit: int = 500) -> int:
    """Resolve every expired pending hold (the sweep after a crash); returns how many.

    A hold with a written-ahead charge (a stream that was delivering when its worker died,
    ledger.services.safeguards) is captured for what was delivered; the others are voided."""
    from ledger.services.safeguards import sweep_usage

    resolved = 0
    while True:
        with transaction.atomic():
            rows = list(
                Hold.objects.select_for_update(skip_locked=True)
                .filter(status=HoldStatus.PENDING, expires_at__lt=timezone.now())
                .order_by("expires_at")
                .values_list("pk", "settle_cost", "settle_usage")[:limit]
            )
            for hold_id, cost, usage in rows:
                if usage is not None and cost is not None:
                    done = hold_capture(hold_id=hold_id, amount=cost, usage=sweep_usage(usage))
                else:
                    done = hold_void(hold_id=hold_id, expired=True)
                if done.created:
                    resolved += 1
        if len(rows) < limit:
            return resolved


# --- PostgreSQL fast path ---------------------------------------------------------------------
#
# Profile (docs/benchmarks.md, "Profile notes"): with the ORM, a hold was 5 round trips and a
# capture 10, all inside the transaction that had already locked the org's wallet row, so on
# one hot wallet every request waited for ~15 round trips of the one before it (47 req/s flat
# at any concurrency). On PostgreSQL each operation is now ONE statement (data-modifying CTEs)
# run in autocommit: the wallet row is locked inside the server only for the rest of that
# statement and its commit. The guards are the same conditional UPDATEs as the ORM path
# (re-checked by PostgreSQL against the newest row under READ COMMITTED), rows are locked in
# the same order (hold, wallet, then budget counters: the counter UPDATEs join the wallet
# UPDATE's result, so they cannot run before it), and ledger rows are only ever INSERTed.
# SQLite (`make run`) and the rare cases below use the ORM path.

# A hold refused after its row was inserted must leave nothing behind: the statement aborts
# itself (casting this text to int), which rolls the whole statement back.
_REFUSED = "tokenforge: hold refused by a budget"
_REFUSED_BALANCE = "tokenforge: hold refused: insufficient balance"


def _fast() -> bool:
    return connection.vendor == "postgresql" and getattr(settings, "LEDGER_FAST_PATH", True)


_PLACE_SQL = """
WITH wal AS (
    SELECT id FROM ledger_account
    WHERE org_id = %(org)s::bigint AND currency = %(currency)s::varchar AND (kind = 'wallet'
        OR (kind = 'allowance' AND %(run)s::uuid IS NOT NULL
            AND posted - held >= %(amount)s::numeric))
    ORDER BY kind = 'wallet' LIMIT 1
), bud AS (
    SELECT b.id, b.amount, b.project_id IS NOT NULL AS is_project,
        b.researcher_run_id IS NOT NULL AS is_run,
        CASE b.period WHEN 'day' THEN %(day)s::date WHEN 'week' THEN %(week)s::date
            WHEN 'month' THEN %(month)s::date ELSE DATE '1970-01-01' END AS start
    FROM ledger_budget b
    WHERE b.currency = %(currency)s::varchar AND b.removed_at IS NULL
      AND (b.project_id = %(project)s::bigint OR b.api_key_id = %(key)s::bigint
           OR b.researcher_run_id = %(run)s::uuid)
), cnt AS (
    SELECT bud.amount AS budget_amount, bud.is_project, bud.is_run, c.id AS counter_id
    FROM bud LEFT JOIN ledger_budgetcounter c ON c.budget_id = bud.id AND c.period_start = bud.start
), h AS (
    INSERT INTO ledger_hold (id, org_id, wallet_id, amount, status, project_counter_id,
        key_counter_id, run_counter_id, request_id, expires_at, created_at)
    SELECT %(hold)s::uuid, %(org)s::bigint, wal.id, %(amount)s::numeric, 'pending',
        (SELECT counter_id FROM cnt WHERE is_project),
        (SELECT counter_id FROM cnt WHERE NOT is_project AND NOT is_run),
        (SELECT counter_id FROM cnt WHERE is_run),
        %(request)s::varchar, %(expires)s::timestamptz, now()
    FROM wal
    WHERE NOT EXISTS (SELECT 1 FROM cnt WHERE counter_id IS NULL)
    RETURNING id, wallet_id, project_counter_id, key_counter_id
), w AS (
    UPDATE ledger_account a SET held = a.held + %(amount)s::numeric
    FROM h
    WHERE a.id = h.wallet_id AND a.posted >= a.held + %(amount)s::numeric
    RETURNING a.id
), c AS (
    UPDATE ledger_budgetcounter bc SET reserved = bc.reserved + %(amount)s::numeric
    FROM cnt, w
    WHERE bc.id = cnt.counter_id
      AND bc.spent <= cnt.budget_amount - %(amount)s::numeric - bc.reserved
    RETURNING bc.id
)
SELECT (SELECT count(*) FROM wal), (SELECT count(*) FROM cnt WHERE counter_id IS NULL),
    CASE WHEN (SELECT count(*) FROM h) = 0 THEN 0
        WHEN (SELECT count(*) FROM w) = 0
            THEN ('tokenforge: hold refused: insufficient balance ' || (SELECT count(*) FROM h))::int
        WHEN (SELECT count(*) FROM c) < (SELECT count(*) FROM cnt)
            THEN ('tokenforge: hold refused by a budget ' || (SELECT count(*) FROM h))::int
        ELSE 1 END,
    wal.id, (SELECT project_counter_id FROM h), (SELECT key_counter_id FROM h)
FROM (SELECT 1) one LEFT JOIN wal ON true
"""


def place_statement(
    *,
    hold_id: UUID,
    org_id: int,
    currency: str,
    amount: Decimal,
    project_id: int | None,
    api_key_id: int | None,
    request_id: str,
    now,
    ttl: int,
    researcher_run_id: UUID | None = None,
) -> tuple[str, dict]:
    return _PLACE_SQL, {
        "run": researcher_run_id,
        "hold": hold_id,
        "org": org_id,
        "currency": currency,
        "amount": amount,
        "project": project_id,
        "key": api_key_id,
        "request": request_id,
        "expires": now + timedelta(seconds=ttl),
        "day": period_start("day", now),
        "week": period_start("week", now),
        "month": period_start("month", now),
    }


def place_outcome(row) -> str:
    """ "placed", or "orm" (no wallet row, or a budget without a counter for this period yet:
    the ORM path creates what is missing). A refusal aborts the statement (nothing stays
    reserved) with an error that `place_refusal` reads."""
    wallets, missing_counters, placed = row[0], row[1], row[2]
    if wallets != 1 or missing_counters:
        return "orm"
    return "placed" if placed == 1 else "orm"


def place_refusal(exc: BaseException) -> str | None:
    """ "insufficient" or "budget" when `exc` is the fast path's refusal, else None."""
    text = str(exc)
    if _REFUSED_BALANCE in text:
        return "insufficient"
    if _REFUSED in text:
        return "budget"
    return None


_COLUMNS: list = []
_NAMES: set[str] = set()


def _usage_columns() -> list:
    """The usage record's columns the statement fills from the engine's dict (computed once)."""
    if not _COLUMNS:
        skip = {"id", "org", "cost", "status", "hold", "transaction", "created_at"}
        _COLUMNS.extend(f for f in UsageRecord._meta.concrete_fields if f.name not in skip)
        _NAMES.update(f.attname for f in _COLUMNS)
        _NAMES.update(f.name for f in _COLUMNS)
    return _COLUMNS


_SQL_CACHE: dict[tuple[str, bool], str] = {}


def _usage_insert(status: str, with_transaction: bool) -> str:
    """The usage record's INSERT: its fields travel as ONE jsonb parameter expanded by
    `jsonb_populate_record` (profile: binding ~30 parameters one by one was a fifth of the
    client's CPU per hold+capture pair)."""
    fields = _usage_columns()
    cols = ", ".join(f.column for f in fields)
    vals = ", ".join(f"r.{f.column}" for f in fields)
    txn_col = ", transaction_id" if with_transaction else ""
    txn_val = ", (SELECT id FROM t)" if with_transaction else ""
    cost = "%(cost)s::numeric" if with_transaction else "0"
    # Column names come from the model; the values are one bound parameter.
    return (
        f"u AS (INSERT INTO ledger_usagerecord ({cols}, org_id, cost, status, hold_id{txn_col}, "  # noqa: S608
        f"created_at) SELECT {vals}, h.org_id, {cost}, '{status}', h.id{txn_val}, now() "
        "FROM h, jsonb_populate_record(NULL::ledger_usagerecord, %(usage)s::jsonb) r "
        "RETURNING id)"
    )


def _json_default(value):
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _usage_params(usage: dict[str, Any] | None) -> dict:
    if usage is None:
        return {}
    return {"usage": orjson.dumps(_usage_record(usage), default=_json_default).decode()}


def _usage_record(usage: dict[str, Any]) -> dict[str, Any]:
    """The usage record's row (column: value) for `jsonb_populate_record`."""
    columns = _usage_columns()
    unknown = set(usage) - _NAMES
    if unknown:
        raise TypeError(f"unknown usage record fields: {sorted(unknown)}")
    record = {}
    for f in columns:
        value = usage[f.attname] if f.attname in usage else usage.get(f.name, NOT_GIVEN)
        if value is NOT_GIVEN:
            value = f.get_default()
        record[f.column] = value
    return record


NOT_GIVEN = object()

# The wallet and counter rows (the hot ones: every request of an org updates its wallet) are
# changed last, so their row locks are held only for the end of the statement and the commit.
_CAPTURE_HEAD = """
WITH h AS (
    UPDATE ledger_hold SET status = 'captured',
        captured_amount = LEAST(%(cost)s::numeric, amount), resolved_at = %(now)s::timestamptz
    WHERE id = %(hold)s::uuid AND status = 'pending'
    RETURNING id, org_id, wallet_id, amount, captured_amount AS charge, project_counter_id,
        key_counter_id, run_counter_id
), acc AS (
    SELECT a.id, a.currency FROM ledger_account a, h WHERE a.id = h.wallet_id
), t AS (
    INSERT INTO ledger_transaction (org_id, kind, reason, hold_id, created_at)
    SELECT h.org_id, 'usage', '', h.id, now() FROM h WHERE %(cost)s::numeric > 0
    RETURNING id
), p AS (
    INSERT INTO ledger_posting (transaction_id, account_id, currency, amount)
    SELECT t.id, acc.id, acc.currency, -h.charge FROM t, acc, h
    UNION ALL
    SELECT t.id, (SELECT s.id FROM ledger_account s WHERE s.org_id IS NULL
            AND s.kind = 'usage_revenue' AND s.currency = acc.currency),
        acc.currency, %(cost)s::numeric
    FROM t, acc
    UNION ALL
    SELECT t.id, (SELECT s.id FROM ledger_account s WHERE s.org_id IS NULL
            AND s.kind = 'shortfall' AND s.currency = acc.currency),
        acc.currency, h.charge - %(cost)s::numeric
    FROM t, acc, h WHERE %(cost)s::numeric > h.charge
    RETURNING id
){usage}, w AS (
    UPDATE ledger_account a SET held = a.held - h.amount, posted = a.posted - h.charge
    FROM h WHERE a.id = h.wallet_id
    RETURNING a.id
), bc AS (
    UPDATE ledger_budgetcounter c SET reserved = c.reserved - h.amount, spent = c.spent + h.charge
    FROM h, w WHERE c.id IN (h.project_counter_id, h.key_counter_id, h.run_counter_id)
    RETURNING c.id, c.spent, c.alerted_at, c.budget_id
)"""

_CAPTURE_TAIL = """
SELECT h.id, h.org_id, h.wallet_id, h.amount, h.charge, h.project_counter_id, h.key_counter_id,
    (SELECT id FROM t), {record}, (SELECT count(*) FROM p), (SELECT count(*) FROM w),
    ARRAY(SELECT bc.id FROM bc JOIN ledger_budget b ON b.id = bc.budget_id
          WHERE bc.alerted_at IS NULL AND b.amount > 0 AND bc.spent >= b.amount * b.soft_threshold)
FROM h
"""

_VOID_HEAD = """
WITH h AS (
    UPDATE ledger_hold SET status = %(status)s::varchar, resolved_at = %(now)s::timestamptz
    WHERE id = %(hold)s::uuid AND status = 'pending'
    RETURNING id, org_id, wallet_id, amount, project_counter_id, key_counter_id, run_counter_id
){usage}, w AS (
    UPDATE ledger_account a SET held = a.held - h.amount FROM h WHERE a.id = h.wallet_id
    RETURNING a.id
), bc AS (
    UPDATE ledger_budgetcounter c SET reserved = c.reserved - h.amount
    FROM h, w WHERE c.id IN (h.project_counter_id, h.key_counter_id, h.run_counter_id)
    RETURNING c.id
)"""

_VOID_TAIL = """
SELECT h.id, h.org_id, h.wallet_id, h.amount, h.project_counter_id, h.key_counter_id, {record},
    (SELECT count(*) FROM w), (SELECT count(*) FROM bc)
FROM h
"""


def capture_statement(
    *, hold_id, cost: Decimal, usage: dict[str, Any] | None, now
) -> tuple[str, dict]:
    sql = _capture_sql(usage is not None)
    return sql, {"hold": hold_id, "cost": cost, "now": now, **_usage_params(usage)}


def _capture_sql(with_usage: bool) -> str:
    key = ("capture", with_usage)
    sql = _SQL_CACHE.get(key)
    if sql is None:
        usage_cte = (",\n" + _usage_insert("settled", True)) if with_usage else ""
        record = "(SELECT id FROM u)" if with_usage else "NULL::bigint"
        sql = _CAPTURE_HEAD.format(usage=usage_cte) + _CAPTURE_TAIL.format(record=record)
        _SQL_CACHE[key] = sql
    return sql


def void_statement(
    *, hold_id, usage: dict[str, Any] | None, expired: bool, now
) -> tuple[str, dict]:
    key = ("void", usage is not None)
    sql = _SQL_CACHE.get(key)
    if sql is None:
        usage_cte = (",\n" + _usage_insert("failed", False)) if usage is not None else ""
        record = "(SELECT id FROM u)" if usage is not None else "NULL::bigint"
        sql = _VOID_HEAD.format(usage=usage_cte) + _VOID_TAIL.format(record=record)
        _SQL_CACHE[key] = sql
    status = HoldStatus.EXPIRED if expired else HoldStatus.VOIDED
    return sql, {"hold": hold_id, "status": str(status), "now": now, **_usage_params(usage)}


# --- Captures in batches ------------------------------------------------------------------------
#
# Profile (bench/bench_holds.py, one hot wallet): every capture statement locked the wallet row
# on its own, so the holds of the next requests queued behind each capture, and each capture
# paid its own round trip, statement start and commit. The gateway hands the captures that
# arrive while one batch runs to ONE statement (routing.db.pg_capture): the wallet row (and each
# budget counter) is updated once per batch with the batch's sums, every item still gets its
# own hold update, transaction, postings and usage record, all in one transaction. The guards
# are the single statement's: only a pending hold is captured (an item whose hold is not
# pending gets no row back, as the single statement's None), the charge is at most the hold.
# Wallets are locked in id order (`lk`), so two batches spanning the same wallets cannot
# deadlock; hold rows come first, then wallets, then counters, as everywhere else.

_CAPTURE_BATCH_SQL = """
WITH req AS (
    SELECT (e->>'hold')::uuid AS hold, (e->>'cost')::numeric AS cost,
        (e->>'now')::timestamptz AS at, e->'usage' AS usage, o AS ord
    FROM jsonb_array_elements(%(batch)s::jsonb) WITH ORDINALITY AS x(e, o)
), h AS (
    UPDATE ledger_hold hh SET status = 'captured',
        captured_amount = LEAST(req.cost, hh.amount), resolved_at = req.at
    FROM req
    WHERE hh.id = ANY(%(holds)s::uuid[]) AND hh.id = req.hold
        AND hh.status = 'pending' COLLATE "C"
    RETURNING hh.id, hh.org_id, hh.wallet_id, hh.amount, hh.captured_amount AS charge,
        hh.project_counter_id, hh.key_counter_id, hh.run_counter_id, req.cost, req.usage,
        req.ord
), acc AS (
    SELECT a.id, a.currency FROM ledger_account a WHERE a.id IN (SELECT wallet_id FROM h)
), t AS (
    INSERT INTO ledger_transaction (org_id, kind, reason, hold_id, created_at)
    SELECT h.org_id, 'usage', '', h.id, now() FROM h WHERE h.cost > 0
    RETURNING id, hold_id
), ht AS (
    SELECT h.*, t.id AS txn, acc.currency FROM h JOIN acc ON acc.id = h.wallet_id
        LEFT JOIN t ON t.hold_id = h.id
), p AS (
    INSERT INTO ledger_posting (transaction_id, account_id, currency, amount)
    SELECT ht.txn, ht.wallet_id, ht.currency, -ht.charge FROM ht WHERE ht.txn IS NOT NULL
    UNION ALL
    SELECT ht.txn, (SELECT s.id FROM ledger_account s WHERE s.org_id IS NULL
            AND s.kind = 'usage_revenue' AND s.currency = ht.currency),
        ht.currency, ht.cost
    FROM ht WHERE ht.txn IS NOT NULL
    UNION ALL
    SELECT ht.txn, (SELECT s.id FROM ledger_account s WHERE s.org_id IS NULL
            AND s.kind = 'shortfall' AND s.currency = ht.currency),
        ht.currency, ht.charge - ht.cost
    FROM ht WHERE ht.txn IS NOT NULL AND ht.cost > ht.charge
    RETURNING id
), u AS (
    INSERT INTO ledger_usagerecord ({cols}, org_id, cost, status, hold_id, transaction_id,
        created_at)
    SELECT {vals}, ht.org_id, ht.cost, 'settled', ht.id, ht.txn, now()
    FROM ht, jsonb_populate_record(NULL::ledger_usagerecord, ht.usage) r
    WHERE jsonb_typeof(ht.usage) = 'object'
    RETURNING id, hold_id
), lk AS (
    SELECT a.id FROM ledger_account a WHERE a.id IN (SELECT wallet_id FROM h)
    ORDER BY a.id FOR NO KEY UPDATE
), w AS (
    UPDATE ledger_account a SET held = a.held - s.amount, posted = a.posted - s.charge
    FROM (SELECT wallet_id, sum(amount) AS amount, sum(charge) AS charge FROM h
          GROUP BY wallet_id) s, lk
    WHERE a.id = s.wallet_id AND lk.id = a.id
    RETURNING a.id
), bc AS (
    UPDATE ledger_budgetcounter c SET reserved = c.reserved - s.amount, spent = c.spent + s.charge
    FROM (SELECT k.counter, sum(h.amount) AS amount, sum(h.charge) AS charge
          FROM h CROSS JOIN LATERAL unnest(ARRAY[h.project_counter_id, h.key_counter_id,
              h.run_counter_id]) AS k(counter)
          WHERE k.counter IS NOT NULL GROUP BY k.counter) s
    WHERE c.id = s.counter AND (SELECT count(*) FROM w) > 0
    RETURNING c.id, c.spent, c.alerted_at, c.budget_id
), alerts AS (
    SELECT ARRAY(SELECT bc.id FROM bc JOIN ledger_budget b ON b.id = bc.budget_id
        WHERE bc.alerted_at IS NULL AND b.amount > 0
            AND bc.spent >= b.amount * b.soft_threshold) AS ids
)
SELECT ht.ord, ht.id, ht.org_id, ht.wallet_id, ht.amount, ht.charge, ht.project_counter_id,
    ht.key_counter_id, ht.txn, u.id, (SELECT count(*) FROM p), (SELECT count(*) FROM w),
    CASE WHEN ht.ord = (SELECT min(ord) FROM h) THEN (SELECT ids FROM alerts)
        ELSE '{{}}'::bigint[] END
FROM ht LEFT JOIN u ON u.hold_id = ht.id
"""


def capture_batch_item(*, hold_id, cost: Decimal, usage: dict[str, Any] | None, now) -> dict:
    """One capture as an element of `capture_batch_statement`'s batch; raises TypeError for
    unknown usage fields here, in the caller, so a bad item never reaches a batch."""
    return {
        "hold": str(hold_id),
        "cost": str(cost),
        "now": now.isoformat(),
        "usage": _usage_record(usage) if usage is not None else None,
    }


def capture_batch_statement(items: list[dict]) -> tuple[str, dict]:
    """One statement capturing every item (`capture_batch_item`), all or nothing.

    Its rows are the single statement's row (capture_statement) preceded by the item's
    1-based position; an item whose hold was not pending has no row. A batch of one is the
    single statement, its one row unnumbered (cheaper on the server: a lone capture at low
    load pays nothing extra)."""
    if len(items) == 1:
        item = items[0]
        params = {"hold": item["hold"], "cost": item["cost"], "now": item["now"]}
        if item["usage"] is not None:
            params["usage"] = orjson.dumps(item["usage"], default=_json_default).decode()
        return _capture_sql(item["usage"] is not None), params
    key = ("capture_batch", True)
    sql = _SQL_CACHE.get(key)
    if sql is None:
        fields = _usage_columns()
        sql = _SQL_CACHE[key] = _CAPTURE_BATCH_SQL.format(
            cols=", ".join(f.column for f in fields),
            vals=", ".join(f"r.{f.column}" for f in fields),
        )
    # The ids also travel as an array: `id = ANY(...)` is a primary-key lookup whatever the
    # planner guesses of the JSON. (`COLLATE "C"`, the same equality on these ASCII values,
    # keeps the planner off the partial index of pending holds: EXPLAIN ANALYZE showed it
    # AND-ing the 32 keys with that index's 70,000 entries, mostly dead, 3 ms per batch.)
    return sql, {
        "batch": orjson.dumps(items, default=_json_default).decode(),
        "holds": [item["hold"] for item in items],
    }


# Holds in batches, all or nothing: the holds that arrive while one batch runs are placed by
# ONE statement (routing.db.pg_place) that reserves their sum on the wallet and on each budget
# counter with the single statement's guards (`posted >= held + sum`, `spent <= budget - sum -
# reserved`). If the sum does not fit, or any item needs the ORM path (no wallet row, a budget
# without a counter for this period), the statement places nothing and each item is placed
# by the single statement on its own, which decides exactly as before.
_PLACE_BATCH_SQL = """
WITH req AS (
    SELECT (e->>'hold')::uuid AS hold, (e->>'org')::bigint AS org, e->>'currency' AS currency,
        (e->>'amount')::numeric AS amount, (e->>'project')::bigint AS project,
        (e->>'key')::bigint AS key, e->>'request' AS request,
        (e->>'expires')::timestamptz AS expires, (e->>'day')::date AS day,
        (e->>'week')::date AS week, (e->>'month')::date AS month, o AS ord
    FROM jsonb_array_elements(%(batch)s::jsonb) WITH ORDINALITY AS x(e, o)
), wal AS (
    SELECT req.ord, a.id FROM req JOIN ledger_account a
        ON a.org_id = req.org AND a.currency = req.currency AND a.kind = 'wallet'
), cnt AS (
    SELECT req.ord, req.amount, b.amount AS budget_amount, b.project_id IS NOT NULL AS is_project,
        c.id AS counter_id
    FROM req JOIN ledger_budget b ON b.currency = req.currency AND b.removed_at IS NULL
        AND (b.project_id = req.project OR b.api_key_id = req.key)
    LEFT JOIN ledger_budgetcounter c ON c.budget_id = b.id AND c.period_start =
        CASE b.period WHEN 'day' THEN req.day WHEN 'week' THEN req.week
            WHEN 'month' THEN req.month ELSE DATE '1970-01-01' END
), ok AS (
    SELECT (SELECT count(*) FROM wal) = (SELECT count(*) FROM req)
        AND NOT EXISTS (SELECT 1 FROM cnt WHERE counter_id IS NULL) AS ok
), h AS (
    INSERT INTO ledger_hold (id, org_id, wallet_id, amount, status, project_counter_id,
        key_counter_id, run_counter_id, request_id, expires_at, created_at)
    SELECT req.hold, req.org, wal.id, req.amount, 'pending',
        (SELECT counter_id FROM cnt WHERE cnt.ord = req.ord AND is_project),
        (SELECT counter_id FROM cnt WHERE cnt.ord = req.ord AND NOT is_project),
        NULL, req.request, req.expires, now()
    FROM req JOIN wal ON wal.ord = req.ord, ok
    WHERE ok.ok
    RETURNING id, wallet_id, amount
), lk AS (
    SELECT a.id FROM ledger_account a WHERE a.id IN (SELECT wallet_id FROM h)
    ORDER BY a.id FOR NO KEY UPDATE
), w AS (
    UPDATE ledger_account a SET held = a.held + s.amount
    FROM (SELECT wallet_id, sum(amount) AS amount FROM h GROUP BY wallet_id) s, lk
    WHERE a.id = s.wallet_id AND lk.id = a.id AND a.posted >= a.held + s.amount
    RETURNING a.id
), c AS (
    UPDATE ledger_budgetcounter bc SET reserved = bc.reserved + s.amount
    FROM (SELECT counter_id, max(budget_amount) AS budget_amount, sum(amount) AS amount
          FROM cnt GROUP BY counter_id) s
    WHERE bc.id = s.counter_id AND bc.spent <= s.budget_amount - s.amount - bc.reserved
        AND (SELECT count(*) FROM w) > 0
    RETURNING bc.id
)
SELECT CASE WHEN NOT (SELECT ok FROM ok) THEN 0
    WHEN (SELECT count(*) FROM w) < (SELECT count(DISTINCT wallet_id) FROM h)
        THEN ('tokenforge: batch of holds refused: balance ' || (SELECT count(*) FROM h))::int
    WHEN (SELECT count(*) FROM c) < (SELECT count(DISTINCT counter_id) FROM cnt)
        THEN ('tokenforge: batch of holds refused: budget ' || (SELECT count(*) FROM h))::int
    ELSE (SELECT count(*) FROM h) END
"""

_PLACE_FIELDS = ("hold", "org", "currency", "amount", "project", "key", "request", "expires")
_PLACE_FIELDS += ("day", "week", "month")


def place_batch_statement(items: list[dict]) -> tuple[str, dict]:
    """One statement placing every hold of `items` (each the params of `place_statement`,
    without a researcher run), all or nothing. Its one value: how many holds it placed, or
    0 when nothing was placed (an item needs the ORM path); a refusal aborts it."""
    batch = [{name: item[name] for name in _PLACE_FIELDS} for item in items]
    return _PLACE_BATCH_SQL, {"batch": orjson.dumps(batch, default=_json_default).decode()}


def capture_missing_system_account(exc: BaseException) -> bool:
    """A capture's posting needs the currency's revenue/shortfall account, created on first use:
    without it the posting's account is NULL and the whole statement is refused."""
    text = str(exc)
    return "account_id" in text and "null" in text.lower()


def system_accounts_ensure() -> None:
    for currency in Currency.values:
        system_account(currency=currency, kind=AccountKind.USAGE_REVENUE)
        system_account(currency=currency, kind=AccountKind.SHORTFALL)


def usage_record_failed(*, org_id: int, usage: dict[str, Any]) -> UsageRecord:
    """The record of a request that failed with no hold left to void (e.g. its route failed
    and the next route's hold was refused): cost 0, the attempts say what happened."""
    return UsageRecord.objects.create(**usage, org_id=org_id, cost=ZERO, status=UsageStatus.FAILED)
