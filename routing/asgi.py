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
import tempfile

from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.urls import get_resolver, set_script_prefix

from config.middleware import RequestIdMiddleware, new_request_id
from routing import db, edge

GATEWAY_PREFIX = "/v1/"

log = logging.getLogger("routing.asgi")


# Resolved paths, so the hot paths skip the resolver's regexes (bounded: paths are the client's).
_MATCHES: dict = {}
_MATCHES_MAX = 256


def _resolve(path_info: str):
    match = _MATCHES.get(path_info)
    if match is None:
        match = get_resolver("routing.urls_gateway").resolve(path_info)
        if match.url_name != "not-found" and len(_MATCHES) < _MATCHES_MAX:
            _MATCHES[path_info] = match
    return match


class GatewayASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        handler = convert_exception_to_response(self._get_response_async)
        self._middleware_chain = convert_exception_to_response(RequestIdMiddleware(handler))

    async def _get_response_async(self, request):
        """Django's, for views that are all async and take no view middleware: resolve
        against /v1/'s own URL map (routing/urls_gateway.py), call the view."""
        match = _resolve(request.path_info)
        request.resolver_match = match
        return await match.func(request, *match.args, **match.kwargs)

    async def handle(self, scope, receive, send):
        """Django's `ASGIHandler.handle` without the two thread hops (see the module doc);
        a client that disconnects still cancels the view (which voids or settles its hold).
        Host, size and key are checked from the headers before the body is read (routing.edge)."""
        with db.request_in_flight():
            await self._handle(scope, receive, send)

    async def _handle(self, scope, receive, send):
        send = edge.with_nosniff(send)
        refusal = await edge.early_refusal(scope)
        if refusal is not None:
            await self._refuse(scope, refusal, send)
            return
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        except edge.BodyTooLarge:
            await self._refuse(scope, edge.too_large(), send)
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

    async def read_body(self, receive):
        """Django's read_body with a byte count: reading stops as soon as the body grows past
        PROXY_MAX_BODY_BYTES (chunked bodies have no Content-Length to refuse up front)."""
        limit = settings.PROXY_MAX_BODY_BYTES
        body_file = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed by handle()
            max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b"
        )
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                body_file.close()
                raise RequestAborted()
            chunk = message.get("body") or b""
            size += len(chunk)
            if size > limit:
                body_file.close()
                raise edge.BodyTooLarge()
            if chunk:
                body_file.write(chunk)
            if not message.get("more_body", False):
                break
        body_file.seek(0)
        return body_file

    async def _refuse(self, scope, err, send) -> None:
        """An error answer sent without reading the body (the server then closes the
        connection rather than read the rest)."""
        from routing.errors import openai_error_response

        if scope["path"].startswith("/v1/messages"):
            from routing.views_anthropic import anthropic_error_response

            response = anthropic_error_response(err)
        else:
            response = openai_error_response(err)
        response.headers["x-request-id"] = new_request_id()
        if err.status == 413:
            response.headers["Connection"] = "close"
        await self.send_response(response, send)
        response.close()


def with_gateway(site_application):
    """Route /v1/ to the lean gateway handler, the rest to `site_application`."""
    gateway = GatewayASGIHandler()

    async def application(scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith(GATEWAY_PREFIX):
            return await gateway(scope, receive, send)
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        return await site_application(scope, receive, send)

    return application


async def _lifespan(receive, send) -> None:
    """ASGI lifespan (`scripts/serve.py` turns it on): at a worker's start, subscribe it to the
    pushed state (routing/shared_state.py), so a burst that is the worker's first traffic
    finds it in-process instead of reading Redis per request."""
    from routing import shared_state

    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            shared_state.fresh()  # starts this loop's listener
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await shared_state.stop()
            await send({"type": "lifespan.shutdown.complete"})
            return
