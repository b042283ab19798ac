"""Celery tasks: thin wrappers that load ids and call services."""

from __future__ import annotations

from celery import shared_task


@shared_task
def expire_holds() -> int:
    from ledger.services.holds import holds_expire

    return holds_expire()


@shared_task
def wallets_watch() -> dict:
    """Low-balance alerts and Credit auto top-up (every minute from beat)."""
    from ledger.services.wallet_watch import wallets_watch as watch

    return watch()


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def budget_alert_email(alert_id: int) -> None:
    from ledger.services.alerts import alert_email_send

    alert_email_send(alert_id=alert_id)


@shared_task
def upstream_cost_drift_check() -> int:
    """Today's and yesterday's drift per upstream (yesterday's last requests come in late)."""
    from datetime import UTC, datetime, timedelta

    from ledger.services.drift import cost_drift_alerts_check

    today = datetime.now(UTC).date()
    return len(cost_drift_alerts_check(day=today - timedelta(days=1))) + len(
        cost_drift_alerts_check(day=today)
    )
