"""Redemption codes: bearer codes for money, generated in batches, stored hashed, redeemed once.

The claim is one guarded UPDATE (`redeemed_at IS NULL` and not expired) in the same DB
transaction as the credit, so a code redeemed twice at the same moment credits once: the
second UPDATE blocks on the row lock, re-checks `redeemed_at IS NULL` after the first commits,
and updates nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Now

from accounts.audit import audit_record
from accounts.models import Organization
from ledger.errors import LedgerError
from ledger.models import (
    AccountKind,
    RedemptionBatch,
    RedemptionCode,
    TopUp,
    TopUpProvider,
    TopUpStatus,
    Transaction,
    TransactionKind,
)
from ledger.services.topups import amount_validate, currency_validate, wallet_credit

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes get read aloud
CODE_GROUPS = 4
BATCH_MAX = 10_000


class RedemptionRefused(LedgerError):
    """The code cannot be redeemed; `code` says why (unknown, used, expired)."""

    code = "redemption_refused"

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)


def code_generate() -> str:
    groups = ["".join(secrets.choice(CODE_ALPHABET) for _ in range(4)) for _ in range(CODE_GROUPS)]
    return "TF-" + "-".join(groups)


def code_normalize(code: str) -> str:
    """Upper-case, no spaces, dashes where we put them: tolerate how people paste codes."""
    raw = "".join(ch for ch in str(code or "").upper() if ch.isalnum())
    if raw.startswith("TF"):
        raw = raw[2:]
    return "TF-" + "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def code_hash(code: str) -> str:
    return hashlib.sha256(code_normalize(code).encode()).hexdigest()


def redemption_batch_create(
    *,
    name: str,
    currency: str,
    amount: Any,
    count: int,
    expires_at: datetime | None = None,
    actor: Any | None = None,
) -> tuple[RedemptionBatch, list[str]]:
    """Generate `count` codes worth `amount` each; the plain codes are returned only here."""
    currency = currency_validate(currency)
    amount = amount_validate(amount)
    if not isinstance(count, int) or not 1 <= count <= BATCH_MAX:
        raise ValueError(f"The count must be between 1 and {BATCH_MAX}.")
    name = str(name or "").strip() or "Batch"
    codes = set()
    while len(codes) < count:
        codes.add(code_generate())
    plain = sorted(codes)
    with transaction.atomic():
        batch = RedemptionBatch.objects.create(
            name=name[:120],
            currency=currency,
            amount=amount,
            count=count,
            expires_at=expires_at,
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        RedemptionCode.objects.bulk_create(
            [RedemptionCode(batch=batch, code_hash=code_hash(c), prefix=c[:7]) for c in plain]
        )
        audit_record(
            org=None,
            actor=actor,
            action="redemption.batch_create",
            target=batch,
            changes={"currency": currency, "amount": str(amount), "count": count},
        )
    return batch, plain


def redemption_redeem(*, org: Organization, code: str, actor: Any | None) -> Transaction:
    """Claim the code and credit the org's wallet in one DB transaction; once per code.

    The claim is one guarded single-table UPDATE (`redeemed_at IS NULL`) that runs the same
    on PostgreSQL and SQLite: on PostgreSQL a racing second UPDATE blocks on the row lock and
    re-checks the guard after the first commits; SQLite serialises writers. Zero rows: refuse.
    """
    digest = code_hash(code)
    actor_id = getattr(actor, "pk", None)
    with transaction.atomic():
        found = (
            RedemptionCode.objects.filter(code_hash=digest, redeemed_at__isnull=True)
            .filter(Q(batch__expires_at__isnull=True) | Q(batch__expires_at__gt=Now()))
            .values_list("pk", "batch_id")
            .first()
        )
        claimed = 0
        if found is not None:
            claimed = RedemptionCode.objects.filter(pk=found[0], redeemed_at__isnull=True).update(
                redeemed_at=Now(), redeemed_by_org=org, redeemed_by=actor if actor_id else None
            )
        if not claimed:
            raise _refusal(digest)
        code_id, batch_id = found
        batch = RedemptionBatch.objects.get(pk=batch_id)
        reference = f"redeem:{code_id}"
        txn, _ = wallet_credit(
            org=org,
            currency=batch.currency,
            amount=batch.amount,
            reference=reference,
            kind=TransactionKind.REDEMPTION,
            source_kind=AccountKind.PAYMENTS,
            actor=actor,
            reason=f"Redemption code {batch.name}",
        )
        RedemptionCode.objects.filter(pk=code_id).update(transaction=txn)
        TopUp.objects.create(
            org=org,
            currency=batch.currency,
            amount=batch.amount,
            provider=TopUpProvider.REDEMPTION,
            status=TopUpStatus.PAID,
            external_id=reference,
            transaction=txn,
            created_by=actor if actor_id else None,
        )
        audit_record(
            org=org,
            actor=actor,
            action="redemption.redeem",
            target=txn,
            changes={"batch": batch.pk, "currency": batch.currency, "amount": str(batch.amount)},
        )
    return txn


def _refusal(digest: str) -> RedemptionRefused:
    found = RedemptionCode.objects.filter(code_hash=digest).select_related("batch").first()
    if found is None:
        return RedemptionRefused("unknown", "This code is not valid.")
    if found.redeemed_at is not None:
        return RedemptionRefused("used", "This code has already been redeemed.")
    return RedemptionRefused("expired", "This code has expired.")
