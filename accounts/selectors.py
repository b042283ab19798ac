from __future__ import annotations

from accounts.models import Membership


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
