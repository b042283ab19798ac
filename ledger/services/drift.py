"""Cost drift alerts: an upstream that states its own cost disagrees with our prices."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

from django.core.cache import cache
from django.core.mail import mail_admins

from ledger.selectors_operator import DateRange, cost_drift_by_upstream_day, drift_threshold

log = logging.getLogger("ledger.drift")


def cost_drift_alerts_check(*, day: date | None = None) -> list[dict]:
    """Alert once per upstream, wallet and day whose reported cost differs from the computed
    one by more than `UPSTREAM_COST_DRIFT_THRESHOLD`: a warning in the log and an email to
    ADMINS. Returns the rows over the threshold (alerted before or now)."""
    day = day or datetime.now(UTC).date()
    rows = [r for r in cost_drift_by_upstream_day(window=DateRange(day, day)) if r["alert"]]
    for row in rows:
        key = f"tokenforge:cost-drift-alert:{row['upstream']}:{row['wallet']}:{day.isoformat()}"
        if not cache.add(key, 1, timeout=3 * 86400):
            continue
        pct = row["difference_pct"]
        text = (
            f"Upstream {row['upstream']} ({row['wallet']}) on {day}: reported {row['reported']} "
            f"vs computed {row['computed']} over {row['requests']} request(s), difference "
            f"{row['difference']}"
            + (f" ({pct:.2f}%)" if pct is not None else "")
            + f"; threshold {drift_threshold() * 100:.2f}%."
        )
        log.warning("upstream cost drift: %s", text)
        mail_admins(f"[tokenforge] cost drift on {row['upstream']}", text, fail_silently=True)
    return rows
