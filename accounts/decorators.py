"""Dashboard access in one place: `org_required` for function views, `OrgRequiredMixin` for
class-based ones.

Usage::

    from accounts.decorators import org_required

    @org_required()                 # any member (viewer and up)
    def overview(request): ...

    @org_required("admin")          # owners and admins only; others get 403
    def topup(request): ...

    class KeyList(OrgRequiredMixin, ListView):
        min_role = "member"

Inside the view use `request.org` and `request.membership` (set lazily by
`accounts.middleware.CurrentOrganizationMiddleware` from the session) and query tenant data
only through `Model.objects.for_org(request.org)`. The decorator sets nothing new on the
request. It answers:

- anonymous user: redirect to the log-in page (with `?next=`);
- logged in but member of no organization: redirect to `accounts:org_create`;
- role below `min_role` ("viewer" < "member" < "admin" < "owner"): 403 (PermissionDenied).

It wraps sync and async views (the async path checks the membership in a thread, since the
lazy `request.membership` queries the database).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect

from accounts.models import Role


def _refusal(request, min_role: str) -> HttpResponse | None:
    """None when the request may go on; else the response that refuses it."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not request.membership:  # a SimpleLazyObject around None is falsy, never `is None`
        return redirect("accounts:org_create")
    if not request.membership.has_role(min_role):
        raise PermissionDenied("Your role in this organization does not allow this.")
    return None


def org_required(min_role: str | Callable = Role.VIEWER):
    """Require a logged-in member of the current organization with at least `min_role`.

    `@org_required` without parentheses means `@org_required()`.
    """
    if callable(min_role):
        return org_required(Role.VIEWER)(min_role)
    Role(min_role)  # fail at import time on a misspelled role

    def decorator(view):
        if iscoroutinefunction(view):

            @wraps(view)
            async def async_wrapped(request, *args, **kwargs):
                refusal = await sync_to_async(_refusal)(request, min_role)
                if refusal is not None:
                    return refusal
                return await view(request, *args, **kwargs)

            return async_wrapped

        @wraps(view)
        def wrapped(request, *args, **kwargs):
            refusal = _refusal(request, min_role)
            if refusal is not None:
                return refusal
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


class OrgRequiredMixin:
    """Class-based-view form of `org_required`; set `min_role` on the view class."""

    min_role: str = Role.VIEWER

    def dispatch(self, request, *args, **kwargs):
        refusal = _refusal(request, self.min_role)
        if refusal is not None:
            return refusal
        return super().dispatch(request, *args, **kwargs)
