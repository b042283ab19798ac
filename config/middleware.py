"""`x-request-id` on every response; the id is also the usage record's id on /v1/."""

from __future__ import annotations

import secrets

from asgiref.sync import iscoroutinefunction, markcoroutinefunction


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


class RequestIdMiddleware:
    """Sync and async, so the async proxy path never pays a thread hop for it."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def _assign(self, request) -> None:
        # Always our own id: it keys the usage record, so a client must not choose it.
        request.request_id = new_request_id()

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        self._assign(request)
        response = self.get_response(request)
        response.headers["x-request-id"] = request.request_id
        return response

    async def __acall__(self, request):
        self._assign(request)
        response = await self.get_response(request)
        response.headers["x-request-id"] = request.request_id
        return response


class NulByteMiddleware:
    """400 for a NUL byte in the path or query string (`%00`): PostgreSQL text cannot hold
    one, so it would otherwise surface as a 500 from whichever lookup or filter reads it."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    @staticmethod
    def _refusal(request):
        if "\x00" not in request.path and "%00" not in request.META.get("QUERY_STRING", ""):
            return None
        from django.http import HttpResponseBadRequest, JsonResponse

        if request.path.startswith("/api/"):
            return JsonResponse({"detail": "NUL bytes are not allowed in URLs."}, status=400)
        return HttpResponseBadRequest(
            "NUL bytes are not allowed in URLs.\n", content_type="text/plain"
        )

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return self._refusal(request) or self.get_response(request)

    async def __acall__(self, request):
        return self._refusal(request) or await self.get_response(request)
