"""Celery tasks: thin wrappers around `researcher.execution`.

`research_run_execute` acknowledges late and is re-queued when its worker is lost, so a run
never disappears with a killed worker; the run's lease (not the message) decides who runs it.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=settings.RESEARCHER_RUN_TIMEOUT_SECONDS + 60,
    time_limit=settings.RESEARCHER_RUN_TIMEOUT_SECONDS + 120,
)
def research_run_execute(run_id: str) -> str:
    from researcher.execution import run_execute

    return run_execute(run_id=run_id)


@shared_task(ignore_result=True)
def runs_recover() -> dict:
    from researcher.execution import runs_recover as recover

    return recover()
