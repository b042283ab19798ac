"""Two-phase holds: reserve against a wallet and its budgets, then capture or void once.

Every reservation is a conditional UPDATE on the row it changes (never read-then-write);
under PostgreSQL's READ COMMITTED a blocked UPDATE re-checks its WHERE clause against the
newly committed row, so concurrent holds can never overdraw a wallet or a budget.
Rows are locked in one order everywhere: wallet, project counter, key counter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
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
from ledger.money import ZERO, to_money
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
) -> Hold:
    """Reserve `amount` on the org's wallet in `currency` and on every budget that applies.

    Raises InsufficientBalance or BudgetExceeded (naming the budget); then nothing is reserved.
    """
    amount = to_money(amount)
    if amount < 0:
        raise InvalidAmount("a hold amount must be zero or more")
    now = timezone.now()
    ttl = ttl_seconds if ttl_seconds is not None else settings.HOLD_TTL_SECONDS
    with transaction.atomic():
        wallet_id = _wallet_id(org_id, currency)
        reserved = Account.objects.filter(pk=wallet_id, posted__gte=F("held") + amount).update(
            held=F("held") + amount
        )
        if reserved != 1:
            raise InsufficientBalance(currency)
        counters = _reserve_budgets(
            currency=currency, amount=amount, project_id=project_id, api_key_id=api_key_id, now=now
        )
        return Hold.objects.create(
            org_id=org_id,
            wallet_id=wallet_id,
            amount=amount,
            project_counter_id=counters.get("project"),
            key_counter_id=counters.get("key"),
            request_id=request_id,
            expires_at=now + timedelta(seconds=ttl),
        )


def _reserve_budgets(
    *, currency: str, amount: Decimal, project_id, api_key_id, now
) -> dict[str, int]:
    owners = Q()
    if project_id is not None:
        owners |= Q(project_id=project_id)
    if api_key_id is not None:
        owners |= Q(api_key_id=api_key_id)
    if not owners:
        return {}
    budgets = sorted(
        Budget.objects.filter(owners, currency=currency, removed_at__isnull=True),
        key=lambda b: 0 if b.project_id else 1,  # project before key: one lock order everywhere
    )
    counters: dict[str, int] = {}
    for budget in budgets:
        scope = "project" if budget.project_id else "key"
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
        counter_ids = [c for c in (hold.project_counter_id, hold.key_counter_id) if c]
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
    with transaction.atomic():
        hold = Hold.objects.get(pk=hold_id)
        status = HoldStatus.EXPIRED if expired else HoldStatus.VOIDED
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
    counter_ids = [c for c in (hold.project_counter_id, hold.key_counter_id) if c]
    if counter_ids:
        BudgetCounter.objects.filter(pk__in=counter_ids).update(
            reserved=F("reserved") - hold.amount
        )


def _settlement_of(hold_pk) -> Settlement:
    hold = Hold.objects.get(pk=hold_pk)
    txn = Transaction.objects.filter(hold_id=hold_pk).first()
    record = UsageRecord.objects.filter(hold_id=hold_pk).first()
    return Settlement(hold=hold, transaction=txn, usage_record=record, created=False)


def hold_keepalive(*, hold_id: UUID | str, ttl_seconds: int | None = None) -> bool:
    """Push a live stream's hold expiry forward; False if it was already resolved."""
    ttl = ttl_seconds if ttl_seconds is not None else settings.HOLD_TTL_SECONDS
    return (
        Hold.objects.filter(pk=hold_id, status=HoldStatus.PENDING).update(
            expires_at=timezone.now() + timedelta(seconds=ttl)
        )
        == 1
    )


def holds_expire(*, limit: int = 500) -> int:
    """Void every expired pending hold (the sweep after a crash); returns how many."""
    voided = 0
    while True:
        with transaction.atomic():
            ids = list(
                Hold.objects.select_for_update(skip_locked=True)
                .filter(status=HoldStatus.PENDING, expires_at__lt=timezone.now())
                .order_by("expires_at")
                .values_list("pk", flat=True)[:limit]
            )
            for hold_id in ids:
                if hold_void(hold_id=hold_id, expired=True).created:
                    voided += 1
        if len(ids) < limit:
            return voided
