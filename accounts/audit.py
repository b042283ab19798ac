"""One way to write the audit log, called explicitly from services (never from signals)."""

from __future__ import annotations

from typing import Any

from accounts.models import AuditEvent, Organization


def audit_record(
    *,
    org: Organization | None,
    actor: Any | None,
    action: str,
    target: Any,
    changes: dict | None = None,
) -> AuditEvent:
    actor_id = (
        getattr(actor, "pk", None)
        if actor is not None and getattr(actor, "is_authenticated", False)
        else None
    )
    return AuditEvent.objects.create(
        org=org,
        actor_id=actor_id,
        action=action,
        target_type=type(target).__name__.lower(),
        target_id=str(getattr(target, "pk", target)),
        changes=changes or {},
    )
