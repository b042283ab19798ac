from __future__ import annotations

from accounts.selectors import memberships_of


def organization(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    membership = getattr(request, "membership", None)
    return {
        "current_org": membership.org if membership else None,
        "current_membership": membership,
        "my_memberships": memberships_of(user=user),
    }
