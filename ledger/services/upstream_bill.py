"""Reconcile an upstream's exported usage bill with our usage records, line by line.

A bill line (CSV: request id or time, model, tokens, cost) is matched to the record with the
same request id, else to the nearest unmatched record of that upstream within a time window
with the same model and token counts; then its cost is compared with the cost our price
parts computed for the upstream (before the organization's multiplier).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import IO

from ledger.cost_formula import breakdown_of_record
from ledger.models import UsageRecord, UsageStatus
from ledger.money import to_money

COLUMNS = {
    "request_id": ("request_id", "id", "generation_id", "request"),
    "time": ("time", "timestamp", "created_at", "date", "datetime"),
    "model": ("model", "model_name", "upstream_model"),
    "prompt_tokens": ("prompt_tokens", "input_tokens", "tokens_prompt"),
    "completion_tokens": ("completion_tokens", "output_tokens", "tokens_completion"),
    "cost": ("cost", "total_cost", "usage", "amount", "cost_usd"),
}


class BillError(ValueError):
    """The bill cannot be read; the message says why."""


@dataclass
class BillReport:
    lines: int = 0
    matched: int = 0
    mismatches: list[str] = field(default_factory=list)
    billed: Decimal = Decimal(0)
    computed: Decimal = Decimal(0)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def record_upstream_cost(record: UsageRecord) -> Decimal:
    """What our prices said the upstream charges for this record (before the multiplier)."""
    parts = record.price_parts if isinstance(record.price_parts, dict) else {}
    if parts.get("upstream_cost") is not None:
        return to_money(Decimal(str(parts["upstream_cost"])))
    return to_money(breakdown_of_record(record).upstream)


def _column(header: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {h.strip().lower(): h for h in header}
    return next((lowered[n] for n in names if n in lowered), None)


def _int(value) -> int | None:
    try:
        return int(str(value).strip()) if str(value or "").strip() else None
    except ValueError:
        return None


def _time(value) -> datetime | None:
    text = str(value or "").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace(" UTC", "").replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def upstream_bill_reconcile(
    *, upstream: str, bill: IO[str], tolerance: Decimal, window_seconds: int = 300
) -> BillReport:
    reader = csv.DictReader(bill)
    header = reader.fieldnames or []
    cols = {key: _column(header, names) for key, names in COLUMNS.items()}
    if cols["cost"] is None or (cols["request_id"] is None and cols["time"] is None):
        raise BillError(
            "the bill needs a cost column and a request id or time column "
            f"(found: {', '.join(header) or 'no header'})"
        )
    records = UsageRecord.objects.filter(upstream=upstream, status=UsageStatus.SETTLED)
    report = BillReport()
    used: set[int] = set()
    first_time = last_time = None
    for number, row in enumerate(reader, start=2):  # line 1 is the header
        report.lines += 1

        def get(key: str, row=row) -> str:
            return (row.get(cols[key]) or "").strip() if cols[key] else ""

        where = f"line {number}"
        try:
            billed = Decimal(get("cost"))
        except InvalidOperation:
            report.mismatches.append(f"{where}: cost {get('cost')!r} is not a number")
            continue
        report.billed += billed
        model = get("model")
        prompt, completion = _int(get("prompt_tokens")), _int(get("completion_tokens"))
        record = None
        if get("request_id"):
            record = records.filter(request_id=get("request_id")).first()
            where += f" ({get('request_id')})"
        moment = _time(get("time"))
        if moment is not None:
            first_time = min(first_time or moment, moment)
            last_time = max(last_time or moment, moment)
        if record is None and moment is not None:
            near = records.filter(
                created_at__gte=moment - timedelta(seconds=window_seconds),
                created_at__lte=moment + timedelta(seconds=window_seconds),
            ).exclude(pk__in=used)
            if prompt is not None:
                near = near.filter(prompt_tokens=prompt)
            if completion is not None:
                near = near.filter(completion_tokens=completion)
            candidates = [r for r in near if not model or model in (r.upstream_model, r.model)]
            candidates.sort(key=lambda r: abs((r.created_at - moment).total_seconds()))
            record = candidates[0] if candidates else None
        if record is None or record.pk in used:
            report.mismatches.append(
                f"{where}: no usage record of {upstream} matches "
                f"(model {model or '?'}, tokens {prompt}/{completion}, cost {billed})"
            )
            continue
        used.add(record.pk)
        report.matched += 1
        computed = record_upstream_cost(record)
        report.computed += computed
        problems = []
        if prompt is not None and prompt != record.prompt_tokens:
            problems.append(f"prompt tokens bill {prompt} vs record {record.prompt_tokens}")
        if completion is not None and completion != record.completion_tokens:
            problems.append(
                f"completion tokens bill {completion} vs record {record.completion_tokens}"
            )
        if abs(billed - computed) > tolerance:
            problems.append(
                f"cost bill {billed} vs computed {computed} (difference {billed - computed})"
            )
        if problems:
            report.mismatches.append(f"{where} = {record.request_id}: " + "; ".join(problems))
    if first_time is not None:
        missing = records.filter(
            created_at__gte=first_time - timedelta(seconds=window_seconds),
            created_at__lte=last_time + timedelta(seconds=window_seconds),
        ).exclude(pk__in=used)
        for record in missing.order_by("created_at")[:1000]:
            report.mismatches.append(
                f"record {record.request_id} ({record.created_at:%Y-%m-%d %H:%M:%S}, "
                f"{record_upstream_cost(record)}) is not on the bill"
            )
    return report
