"""The embedded demo's research run: a deterministic price history and one finished run, so
a newcomer sees a report at once (`make run` seeds it through `seed_research_demo`)."""

from __future__ import annotations

import math
from datetime import date, timedelta

from researcher.models import ResearchRun

DEMO_QUESTION = "Is NVDA's momentum holding after earnings?"


def demo_prices_csv(*, days: int = 260, start: date = date(2025, 1, 2), base: float = 120.0) -> str:
    """Weekdays only: a trend with a cycle and a pullback, deterministic."""
    lines = ["date,open,high,low,close,volume"]
    day, close, n = start, base, 0
    while n < days:
        if day.weekday() < 5:
            noise = ((n * 7919) % 13 - 6) / 350  # about +-1.7 %, deterministic
            drift = 0.0012 + 0.004 * math.sin(n / 9) + noise - (0.006 if 180 <= n < 200 else 0)
            open_ = close
            close = max(1.0, close * (1 + drift))
            high = max(open_, close) * 1.012
            low = min(open_, close) * 0.988
            volume = 30_000_000 + (n * 7919) % 9_000_000
            lines.append(f"{day.isoformat()},{open_:.2f},{high:.2f},{low:.2f},{close:.2f},{volume}")
            n += 1
        day += timedelta(days=1)
    return "\n".join(lines) + "\n"


def demo_run_seed(*, org, project, user=None) -> ResearchRun:
    """One finished demo run for the organization (idempotent: reuses a finished one)."""
    from researcher.execution import run_execute
    from researcher.services import run_create

    existing = ResearchRun.objects.for_org(org).filter(question=DEMO_QUESTION).first()
    if existing is not None and not existing.is_active:
        return existing
    if existing is None:
        existing, _ = run_create(
            org_id=org.pk,
            project_id=project.pk,
            user=user,
            enqueue=False,
            data={
                "question": DEMO_QUESTION,
                "tickers": ["NVDA"],
                "depth": "standard",
                "model": "demo-gpt",
                "budget": {"currency": "CREDIT", "amount": "0.50"},
                "prices": demo_prices_csv(),
            },
        )
    run_execute(run_id=existing.pk)
    existing.refresh_from_db()
    return existing
