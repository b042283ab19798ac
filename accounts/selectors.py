from __future__ import annotations

import hashlib

from django.utils import timezone

from accounts.models import Invitation, Membership, Organization, Role


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
