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
