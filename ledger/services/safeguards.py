"""What keeps an answered request charged when the usual path cannot (docs/billing.md).

- `hold_checkpoint`: push a live request's hold expiry forward and, for a stream, write ahead
  the charge of what it has delivered so far; the expiry sweep captures such a hold (the
  worker died mid-stream) instead of voiding it.
- `hold_capture_late`: a capture that finds its hold already expired (the request outlived
  it) still charges the request: a fresh debit of the wallet, the rest to shortfall.
- `shortfall_record`: every cost above what was held is logged and audited (operators see the
  shortfall per upstream on the admin overview).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ledger.models import (
    Account,
    BudgetCounter,
    Hold,
    HoldStatus,
    UsageRecord,
    UsageStatus,
)
from ledger.money import ZERO, to_money

log = logging.getLogger("ledger.safeguards")

ANOMALY_LATE_CAPTURE = "hold_expired_before_capture"
ANOMALY_SHORTFALL = "cost_above_hold"
ANOMALY_SWEEP_CAPTURE = "settled_by_sweep_after_crash"


def _json_default(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def usage_json(usage: dict[str, Any]) -> str:
    return orjson.dumps(usage, default=_json_default).decode()


_CHECKPOINT_SQL = (
    "UPDATE ledger_hold SET expires_at = %(expires)s::timestamptz, "
    "settle_cost = COALESCE(%(cost)s::numeric, settle_cost), "
    "settle_usage = COALESCE(%(usage)s::jsonb, settle_usage) "
    "WHERE id = %(hold)s::uuid AND status = 'pending' RETURNING id"
)


# Checkpoints in batches (routing.db.pg_checkpoint): a burst of streams starting at once writes
# its write-aheads as one statement instead of one round trip each, which had queued the holds
# of the streams behind them on the ledger's few connections. A batch never waits for a hold:
# one locked right now is being captured or voided (which supersedes the checkpoint), so it is
# skipped (SKIP LOCKED). Waiting instead deadlocked with capture batches that lock the same
# holds in another order (seen at 64 concurrent streams: 1 s stalls until PostgreSQL broke it).
_CHECKPOINT_BATCH_SQL = """
WITH req AS (
    SELECT (e->>'hold')::uuid AS hold, (e->>'expires')::timestamptz AS expires,
        (e->>'cost')::numeric AS cost, NULLIF(e->'usage', 'null'::jsonb) AS usage
    FROM jsonb_array_elements(%(batch)s::jsonb) AS x(e)
), lk AS (
    SELECT hh.id FROM ledger_hold hh
    WHERE hh.id = ANY(%(holds)s::uuid[]) AND hh.status = 'pending' COLLATE "C"
    FOR NO KEY UPDATE SKIP LOCKED
)
UPDATE ledger_hold h SET expires_at = req.expires,
    settle_cost = COALESCE(req.cost, h.settle_cost),
    settle_usage = COALESCE(req.usage, h.settle_usage)
FROM req, lk
WHERE h.id = lk.id AND h.id = req.hold AND h.status = 'pending'
RETURNING h.id
"""


def checkpoint_batch_item(
    *, hold_id, now, ttl: int, cost: Decimal | None = None, usage: dict | None = None
) -> dict:
    """One checkpoint as an element of `checkpoint_batch_statement`'s batch."""
    return {
        "hold": str(hold_id),
        "expires": (now + timedelta(seconds=ttl)).isoformat(),
        "cost": str(to_money(cost)) if cost is not None else None,
        "usage": usage,
    }


def checkpoint_batch_statement(items: list[dict]) -> tuple[str, dict]:
    """One statement for every checkpoint in `items` (at most one per hold); a batch of one is
    the single statement. Its rows are the ids of the holds still pending."""
    if len(items) == 1:
        item = items[0]
        return _CHECKPOINT_SQL, {
            "hold": item["hold"],
            "expires": item["expires"],
            "cost": item["cost"],
            "usage": usage_json(item["usage"]) if item["usage"] is not None else None,
        }
    return _CHECKPOINT_BATCH_SQL, {
        "batch": orjson.dumps(items, default=_json_default).decode(),
        "holds": [item["hold"] for item in items],
    }


def hold_checkpoint(
    *,
    hold_id: UUID | str,
    ttl_seconds: int | None = None,
    cost: Decimal | None = None,
    usage: dict | None = None,
) -> bool:
    """The ORM twin of `checkpoint_batch_statement`; False if the hold was already resolved."""
    ttl = ttl_seconds if ttl_seconds is not None else settings.HOLD_TTL_SECONDS
    values: dict[str, Any] = {"expires_at": timezone.now() + timedelta(seconds=ttl)}
    if cost is not None:
        values["settle_cost"] = to_money(cost)
    if usage is not None:
        values["settle_usage"] = orjson.loads(usage_json(usage))
    return Hold.objects.filter(pk=hold_id, status=HoldStatus.PENDING).update(**values) == 1


def anomaly(kind: str) -> dict[str, str]:
    """One entry of `UsageRecord.anomalies`: always an object with a `kind` (the usage clamp
    adds `field`, `reported` and `used`)."""
    return {"kind": kind}


def _with_anomaly(usage: dict[str, Any], *names: str) -> dict[str, Any]:
    anomalies = list(usage.get("anomalies") or [])
    anomalies += [anomaly(name) for name in names if anomaly(name) not in anomalies]
    return {**usage, "anomalies": anomalies}


def hold_capture_late(
    *, hold_id: UUID | str, amount: Decimal, usage: dict[str, Any]
) -> UsageRecord | None:
    """Charge an answered request whose hold was already expired or voided (never drop it).

    The hold row becomes the capture it should have been; the wallet pays what it can now
    (at most the hold, never below zero available), budgets count it as spent, the rest goes
    to shortfall. Exactly once: a hold already captured or carrying a usage record is left
    alone. Returns the usage record (None when there was nothing to do).
    """
    from accounts.audit import audit_record
    from ledger.services.holds import _usage_transaction, hold_capture

    cost = to_money(amount)
    now = timezone.now()
    with transaction.atomic():
        hold = Hold.objects.select_for_update().get(pk=hold_id)
        if hold.status == HoldStatus.PENDING:
            return hold_capture(hold_id=hold.pk, amount=cost, usage=usage).usage_record
        if (
            hold.status == HoldStatus.CAPTURED
            or UsageRecord.objects.filter(hold_id=hold.pk).exists()
        ):
            return None
        wallet = Account.objects.select_for_update().get(pk=hold.wallet_id)
        charge = max(ZERO, min(cost, hold.amount, wallet.posted - wallet.held))
        Hold.objects.filter(pk=hold.pk).update(
            status=HoldStatus.CAPTURED, captured_amount=charge, resolved_at=now
        )
        Account.objects.filter(pk=wallet.pk).update(posted=F("posted") - charge)
        counter_ids = [
            c for c in (hold.project_counter_id, hold.key_counter_id, hold.run_counter_id) if c
        ]
        if counter_ids:
            BudgetCounter.objects.filter(pk__in=counter_ids).update(spent=F("spent") + charge)
        txn = _usage_transaction(hold=hold, charge=charge, cost=cost) if cost > ZERO else None
        names = [ANOMALY_LATE_CAPTURE] + ([ANOMALY_SHORTFALL] if cost > charge else [])
        record = UsageRecord.objects.create(
            **_with_anomaly(usage, *names),
            org_id=hold.org_id,
            cost=cost,
            status=UsageStatus.SETTLED,
            hold_id=hold.pk,
            transaction=txn,
        )
        details = {
            "request_id": usage.get("request_id", ""),
            "upstream": usage.get("upstream", ""),
            "hold_status": hold.status,
            "cost": str(cost),
            "charged": str(charge),
            "shortfall": str(cost - charge),
        }
        audit_record(
            org=None, actor=None, action="ledger.late_capture", target=hold, changes=details
        )
    log.warning("capture after the hold expired: charged anyway %s", details)
    return record


def shortfall_record(
    *, hold_id: UUID | str, upstream: str, request_id: str, cost: Decimal, held: Decimal
) -> None:
    """Alert: the real cost passed the hold (an upstream miscounted or ignored the limit)."""
    from accounts.audit import audit_record

    details = {
        "request_id": request_id,
        "upstream": upstream,
        "cost": str(cost),
        "held": str(held),
        "shortfall": str(to_money(cost - held)),
    }
    log.warning("shortfall: cost above the hold %s", details)
    audit_record(
        org=None, actor=None, action="ledger.shortfall", target=Hold(pk=hold_id), changes=details
    )


def sweep_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """The written-ahead usage record of a hold the sweep captures, marked as such."""
    return _with_anomaly(usage, ANOMALY_SWEEP_CAPTURE)
