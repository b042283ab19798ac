"""Celery tasks of the routing app: thin wrappers over services."""

from __future__ import annotations

from celery import shared_task


@shared_task
def responses_purge() -> int:
    """Stored /v1/responses past RESPONSES_RETENTION_DAYS (Celery beat, hourly)."""
    from routing.responses_store import stored_responses_purge

    return stored_responses_purge()
