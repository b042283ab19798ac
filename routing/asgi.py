"""A lean ASGI entry for /v1/: the proxy skips the site's middleware stack.

Under ASGI every `MiddlewareMixin` middleware (security, sessions, CSRF, auth, messages, ...)
runs its hooks through `sync_to_async`: a dozen thread hops per request that the proxy, which
uses none of them, paid on every call. /v1/ requests go to a handler whose only middleware
is the request id; everything else goes to the normal Django application.
"""

from __future__ import annotations

from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response

from config.middleware import RequestIdMiddleware

GATEWAY_PREFIX = "/v1/"


class GatewayASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        handler = convert_exception_to_response(self._get_response_async)
        self._middleware_chain = convert_exception_to_response(RequestIdMiddleware(handler))


def with_gateway(site_application):
    """Route /v1/ to the lean gateway handler, the rest to `site_application`."""
    gateway = GatewayASGIHandler()

    async def application(scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith(GATEWAY_PREFIX):
            return await gateway(scope, receive, send)
        return await site_application(scope, receive, send)

    return application
