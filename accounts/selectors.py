from __future__ import annotations

import hashlib
import re

from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import AuditEvent, Invitation, Membership, Organization, Role


def membership_current(*, user, org_id: int | None) -> Membership | None:
    """The membership for the session's organization, else the user's oldest one."""
    memberships = Membership.objects.select_related("org").filter(user=user)
    if org_id is not None:
        found = memberships.filter(org_id=org_id).first()
        if found is not None:
            return found
    return memberships.order_by("created_at", "pk").first()


def memberships_of(*, user) -> list[Membership]:
    return list(Membership.objects.select_related("org").filter(user=user).order_by("org__name"))


def invitations_pending(*, org) -> list[Invitation]:
    """Invitations not used yet and not expired, newest first."""
    return list(
        Invitation.objects.for_org(org)
        .filter(accepted_at__isnull=True, expires_at__gt=timezone.now())
        .select_related("invited_by")
        .order_by("-created_at")
    )


def members_of(*, org) -> list[Membership]:
    return list(Membership.objects.for_org(org).select_related("user").order_by("created_at", "pk"))


def invitation_token_hash(token: str) -> str:
    """Only this hash is stored, so a database leak does not leak usable links."""
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_pending_by_token(*, token: str) -> Invitation | None:
    """The invitation behind a link, if it can still be used (not used, not expired)."""
    return (
        Invitation.objects.select_related("org", "invited_by")
        .filter(
            token_hash=invitation_token_hash(token),
            accepted_at__isnull=True,
            expires_at__gt=timezone.now(),
        )
        .first()
    )


def organization_owned_by(*, user, name: str) -> Organization | None:
    """The oldest organization called `name` that `user` owns (create_tenant reuses it)."""
    return (
        Organization.objects.filter(name=name, memberships__user=user, memberships__role=Role.OWNER)
        .order_by("pk")
        .first()
    )


# --- Audit log ------------------------------------------------------------------------------

# What the dashboard's "Audit log" filter offers, as action prefixes (see `audit_record`).
AUDIT_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "keys": ("API keys", ("key.",)),
    "budgets": ("Budgets", ("budget.",)),
    "projects": ("Projects", ("project.",)),
    "members": ("Members and invitations", ("membership.", "invitation.", "organization.")),
    "roles": ("Role changes", ("membership.role_change",)),
    "money": (
        "Top-ups, adjustments and refunds",
        ("topup.", "redemption.", "grant.", "ledger.", "adjustment."),
    ),
    "routing": ("Routes and upstreams", ("routing.", "upstream.")),
}
# Platform events (upstreams, routes, prices: org is None) belong to the operator: they are
# shown in admin only, never in a tenant's audit log (their reasons can quote upstream errors).


def _prefixes_q(prefixes: tuple[str, ...]) -> Q:
    query = Q(pk__in=[])
    for prefix in prefixes:
        query |= Q(action__startswith=prefix)
    return query


def audit_events(*, org, kind: str | None = None) -> QuerySet:
    """The organization's own audit events, newest first; never platform (org-less) ones."""
    qs = AuditEvent.objects.for_org(org)
    if kind in AUDIT_KINDS:
        qs = qs.filter(_prefixes_q(AUDIT_KINDS[kind][1]))
    return qs.select_related("actor").order_by("-created_at", "-pk")


def audit_actor_label(*, event: AuditEvent, member_ids: set[int]) -> str:
    """Members by email; operators (staff outside the organization) only as "tokenforge
    operator", so a tenant never learns who the operators are."""
    if event.org_id is None or (
        event.actor is not None and event.actor.is_staff and event.actor_id not in member_ids
    ):
        return "tokenforge operator"
    if event.actor is None:
        return "system"
    return event.actor.email


def member_user_ids(*, org) -> set[int]:
    return set(Membership.objects.for_org(org).values_list("user_id", flat=True))


def audit_change_lines(changes: dict | None) -> list[tuple[str, str]]:
    """`changes` as readable (field, text) pairs; a [before, after] pair reads "a → b"."""
    lines = []
    for field, value in (changes or {}).items():
        if isinstance(value, list) and len(value) == 2 and not isinstance(value[0], dict):
            before, after = value
            text = f"{_plain(before)} → {_plain(after)}"
        else:
            text = _plain(value)
        lines.append((field.replace("_", " "), text))
    return lines


_STORED_DECIMAL = re.compile(r"^-?\d+\.\d{3,}$")


def _plain(value) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, str) and _STORED_DECIMAL.match(value):
        # Amounts are logged at storage precision ("25.0000000000"): show "25.00", keep any
        # digit that matters ("0.0002184").
        whole, _, fraction = value.partition(".")
        return f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_plain(v)}" for k, v in value.items())
    return str(value)
