"""Stored /v1/responses answers: the writes and reads behind GET/DELETE /v1/responses/{id},
its input items, `previous_response_id` replay and the retention sweep. Every read is
scoped to the organization: another tenant's id is simply not found."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from routing.models import StoredResponse


def stored_response_get(*, org_id: int, response_id: str) -> StoredResponse | None:
    if not response_id or "\x00" in response_id or len(response_id) > 64:
        return None
    return StoredResponse.objects.for_org(org_id).filter(pk=response_id).first()


def stored_response_replay(*, org_id: int, response_id: str) -> list[dict] | None:
    """What `previous_response_id` continues from: everything that response's model saw,
    then its output (reasoning, messages, function calls) as input items."""
    stored = stored_response_get(org_id=org_id, response_id=response_id)
    if stored is None:
        return None
    output = [
        item
        for item in (stored.response.get("output") or [])
        if isinstance(item, dict) and item.get("type")
    ]
    return [*stored.context_items, *output]


def stored_response_save(
    *,
    org_id: int,
    api_key_id: int | None,
    request_id: str,
    response: dict,
    input_items: list[dict],
    context_items: list[dict],
) -> StoredResponse:
    return StoredResponse.objects.create(
        id=response["id"],
        org_id=org_id,
        api_key_id=api_key_id,
        request_id=request_id,
        model=str(response.get("model") or "")[:120],
        status=str(response.get("status") or "")[:20],
        previous_response_id=str(response.get("previous_response_id") or "")[:64],
        input_items=input_items,
        context_items=context_items,
        response=response,
    )


def stored_response_delete(*, org_id: int, response_id: str) -> bool:
    stored = stored_response_get(org_id=org_id, response_id=response_id)
    if stored is None:
        return False
    stored.delete()
    return True


def stored_responses_purge(*, days: int | None = None) -> int:
    """Delete stored responses older than RESPONSES_RETENTION_DAYS; returns how many."""
    days = settings.RESPONSES_RETENTION_DAYS if days is None else days
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = StoredResponse.objects.filter(created_at__lt=cutoff).delete()
    return deleted
