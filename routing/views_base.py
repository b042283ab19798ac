"""What every client surface under /v1/ shares: the lean adrf view, key check, body reading,
error rendering (OpenAI's and Anthropic's shapes), JSON/SSE responses and their headers.

Each surface module (`views` for chat completions and friends, `views_anthropic` for
Messages, `views_responses` for the Responses API) imports only this module, never another
surface: a surface is a pair of translations over the same engine, not a copy of another.

DRF's machinery is kept to the minimum (no authentication/permission/throttle classes,
no parsers: the body is read once with orjson) because this is the hot path, and
`GatewayView.async_dispatch` skips adrf's `initial()` (a thread hop per request). /v1/ also
bypasses the site's middleware stack (routing/asgi.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC

import orjson
from adrf.views import APIView
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, StreamingHttpResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.renderers import JSONRenderer

from routing import engine
from routing.auth import authenticate
from routing.errors import GatewayError, bad_request, openai_error_response
from routing.validation import body_parse

__all__ = [
    "ANTHROPIC_ERROR_TYPES",
    "AnthropicView",
    "GatewayError",
    "GatewayView",
    "anthropic_error_response",
    "anthropic_models_list",
    "anthropic_sse_event",
    "authenticate",
    "bad_request",
    "body_parse",
    "gateway_error_from",
    "json_response",
    "openai_sse_event",
    "settle_after_response",
    "settled_response",
    "sse_response",
]

log = logging.getLogger("routing.views")

ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


# --- responses and their headers -------------------------------------------------------------


def json_response(
    data, *, status: int = 200, headers: dict[str, str] | None = None
) -> HttpResponse:
    response = HttpResponse(orjson.dumps(data), status=status, content_type="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def settled_response(result: engine.CompletionResult, data) -> HttpResponse:
    """The JSON answer of a non-streamed request. With ROUTING_SETTLE_AFTER_RESPONSE the
    capture is still running: routing.asgi awaits `response.tf_settlement` right after the
    body is sent, inside the same request (docs/billing.md)."""
    response = json_response(data, headers=result.headers)
    response.tf_settlement = result.settlement
    return response


def settle_after_response() -> bool:
    return settings.ROUTING_SETTLE_AFTER_RESPONSE


def openai_sse_event(event: dict) -> bytes:
    return b"data: " + orjson.dumps(event) + b"\n\n"


def anthropic_sse_event(event: dict) -> bytes:
    return (
        b"event: "
        + str(event.get("type") or "message").encode()
        + b"\ndata: "
        + orjson.dumps(event)
        + b"\n\n"
    )


def sse_response(
    handle: engine.StreamHandle,
    *,
    encode: Callable[[dict], bytes] = openai_sse_event,
    done: bytes | None = b"data: [DONE]\n\n",
) -> StreamingHttpResponse:
    """Stream a handle's events as SSE (any surface: pass its encoder and end marker).

    If the response is closed without ever being iterated (client gone before the first
    byte), the handle is still settled: its hold is released and the upstream closed.
    """

    async def lines():
        async for event in handle.events():
            yield encode(event)
        if done:
            yield done

    response = StreamingHttpResponse(lines(), content_type="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    for name, value in handle.headers.items():
        response.headers[name] = value
    loop = asyncio.get_running_loop()
    response._resource_closers.append(  # Django calls these from response.close()
        lambda: asyncio.run_coroutine_threadsafe(handle.aclose(), loop)
    )
    return response


def anthropic_models_list(models) -> dict:
    """`GET /v1/models` in Anthropic's shape (when the request carries `anthropic-version`)."""
    data = [
        {
            "type": "model",
            "id": m.name,
            "display_name": m.name,
            "created_at": m.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }
        for m in models
    ]
    return {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


# --- errors ----------------------------------------------------------------------------------


def gateway_error_from(exc: Exception) -> GatewayError:
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return GatewayError(405, str(exc.detail), code="method_not_allowed")
    if isinstance(exc, drf_exceptions.APIException):
        return GatewayError(exc.status_code, str(exc.detail))
    if isinstance(exc, OperationalError | InterfaceError):
        # PostgreSQL unreachable: no key check, no hold, so nothing went upstream (issue 8).
        log.error("database unavailable on the gateway: %s", exc.__class__.__name__)
        return GatewayError(
            503,
            "The service is temporarily unavailable; retry shortly.",
            type="api_error",
            code="database_unavailable",
            headers={"Retry-After": "5"},
        )
    log.exception("unexpected error on the gateway")
    return GatewayError(
        500, "Internal error in the gateway.", type="api_error", code="internal_error"
    )


def anthropic_error_response(err: GatewayError, *, request_id: str = "") -> HttpResponse:
    kind = ANTHROPIC_ERROR_TYPES.get(
        err.status, "api_error" if err.status >= 500 else "invalid_request_error"
    )
    body = {"type": "error", "error": {"type": kind, "message": err.message}}
    if request_id:
        body["request_id"] = request_id
    response = HttpResponse(orjson.dumps(body), status=err.status, content_type="application/json")
    for name, value in err.headers.items():
        response.headers[name] = value
    return response


# --- the views' base -------------------------------------------------------------------------


class GatewayView(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []
    parser_classes: list = []
    renderer_classes = [JSONRenderer]

    def handle_exception(self, exc):
        return openai_error_response(gateway_error_from(exc))

    async def async_dispatch(self, request, *args, **kwargs):
        """adrf's dispatch without `initial()`: it would cost a thread hop per request for
        negotiation, authentication, permissions and throttles, none of which these views use
        (the key is checked by `routing.auth.authenticate`, limits by the engine)."""
        self.args, self.kwargs = args, kwargs
        request = self.initialize_request(request, *args, **kwargs)
        self.request = request
        self.headers = self.default_response_headers
        try:
            method = request.method.lower()
            handler = getattr(self, method, None) if method in self.http_method_names else None
            if handler is None:
                handler = self.http_method_not_allowed
            response = handler(request, *args, **kwargs)
            if asyncio.iscoroutine(response):
                response = await response
        except Exception as exc:
            response = self.handle_exception(exc)
        self.response = self.finalize_response(request, response, *args, **kwargs)
        return self.response

    def permission_denied(self, request, message=None, code=None):  # pragma: no cover - unused
        raise GatewayError(403, message or "Forbidden.", type="permission_error")


class AnthropicView(GatewayView):
    """A view on Anthropic's surface: errors in Anthropic's shape."""

    def handle_exception(self, exc):
        request_id = getattr(getattr(self, "request", None), "request_id", "") or ""
        return anthropic_error_response(gateway_error_from(exc), request_id=request_id)
