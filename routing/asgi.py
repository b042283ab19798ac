"""A lean ASGI entry for /v1/: the proxy skips the site's middleware stack.

Under ASGI every `MiddlewareMixin` middleware (security, sessions, CSRF, auth, messages, ...)
runs its hooks through `sync_to_async`: a dozen thread hops per request that the proxy, which
uses none of them, paid on every call. /v1/ requests go to a handler whose only middleware
is the request id; everything else goes to the normal Django application.

Profile (docs/benchmarks.md): Django's `ASGIHandler.handle` also sends `request_started` and
closes the response through `sync_to_async` inside a per-request `ThreadSensitiveContext`,
i.e. it starts two fresh threads per request (~0.3-1 ms each on a busy 2-core box). The
gateway's database work never touches the request thread's connection (routing/db.py drops
stale connections per call), so its handler skips that signal and closes the response on the
event loop (its closers only schedule coroutines; see routing.views_base.sse_response).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.urls import set_script_prefix

from config.middleware import RequestIdMiddleware

GATEWAY_PREFIX = "/v1/"

log = logging.getLogger("routing.asgi")


class GatewayASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        handler = convert_exception_to_response(self._get_response_async)
        self._middleware_chain = convert_exception_to_response(RequestIdMiddleware(handler))

    async def handle(self, scope, receive, send):
        """Django's `ASGIHandler.handle` without the two thread hops (see the module doc);
        a client that disconnects still cancels the view (which voids or settles its hold)."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            error_response.close()
            return

        async def process_request(request, send):
            response = await self.run_get_response(request)
            with contextlib.suppress(asyncio.CancelledError):  # the client went away
                await self.send_response(response, send)
            settlement = getattr(response, "tf_settlement", None)
            if settlement is not None:
                # What a non-streamed request still does after its answer left (the capture
                # itself is already durable by then: docs/billing.md); the request is not
                # over until it is done (shielded, so a client leaving cannot stop it).
                try:
                    await asyncio.shield(settlement)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("bookkeeping after the response failed")
            return response

        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request(request, send)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            pass
        else:
            response.close()
        body_file.close()


def with_gateway(site_application):
    """Route /v1/ to the lean gateway handler, the rest to `site_application`."""
    gateway = GatewayASGIHandler()

    async def application(scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith(GATEWAY_PREFIX):
            return await gateway(scope, receive, send)
        return await site_application(scope, receive, send)

    return application
