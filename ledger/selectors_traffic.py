"""The real token mix of a project or key, to feed the cost estimator ("estimate from this
key's traffic"): its most used model over the last full days, requests per day, and the
average input, output and cached-input tokens per request, scaled by a factor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

from django.db.models import Count, Sum
from django.utils import timezone

from accounts.models import Organization
from ledger.models import UsageRecord, UsageStatus

DEFAULT_DAYS = 7


@dataclass
class TrafficMix:
    model: str
    requests: int  # in the window, before scaling
    days: int
    fields: dict  # model, requests_per_day, input_tokens, output_tokens, cached_input_tokens


def traffic_mix(
    *,
    org: Organization,
    project_id: int | None = None,
    api_key_id: int | None = None,
    scale: Decimal = Decimal(1),
    days: int = DEFAULT_DAYS,
    now: datetime | None = None,
) -> TrafficMix | None:
    """None when the scope had no settled request in the window."""
    now = (now or timezone.now()).astimezone(UTC)
    end = datetime.combine(now.date(), time.min, tzinfo=UTC)
    records = UsageRecord.objects.for_org(org).filter(
        status=UsageStatus.SETTLED, created_at__gte=end - timedelta(days=days), created_at__lt=end
    )
    if project_id is not None:
        records = records.filter(project_id=project_id)
    if api_key_id is not None:
        records = records.filter(api_key_id=api_key_id)
    top = (
        records.values("model")
        .annotate(n=Count("id"), p=Sum("prompt_tokens"), c=Sum("completion_tokens"))
        .annotate(cached=Sum("cached_tokens"))
        .order_by("-n", "model")
        .first()
    )
    if top is None:
        return None
    n = top["n"]

    def avg(total) -> int:
        return int((Decimal(total or 0) / n).quantize(Decimal(1), rounding=ROUND_HALF_UP))

    per_day = (Decimal(n) / days * scale).quantize(Decimal(1), rounding=ROUND_CEILING)
    return TrafficMix(
        model=top["model"],
        requests=n,
        days=days,
        fields={
            "model": top["model"],
            "requests_per_day": int(per_day),
            "input_tokens": avg(top["p"]),
            "output_tokens": avg(top["c"]),
            "cached_input_tokens": avg(top["cached"]),
        },
    )
