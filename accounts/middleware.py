"""Resolve the current organization once per request (from the session) for the dashboard."""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.utils.functional import SimpleLazyObject

SESSION_KEY = "current_org_id"


def _current_membership(request):
    from accounts.selectors import membership_current

    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    return membership_current(user=user, org_id=request.session.get(SESSION_KEY))


class CurrentOrganizationMiddleware:
    """Sets `request.membership` and `request.org` lazily; /v1/ never touches them."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def _attach(self, request) -> None:
        request.membership = SimpleLazyObject(lambda: _current_membership(request))
        request.org = SimpleLazyObject(
            lambda: request.membership.org if request.membership else None
        )

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        self._attach(request)
        return self.get_response(request)

    async def __acall__(self, request):
        self._attach(request)
        return await self.get_response(request)
