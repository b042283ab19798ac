"""What every client surface under /v1/ shares: the lean async view, key check, body reading,
error rendering (OpenAI's and Anthropic's shapes), JSON/SSE responses and their headers.

Each surface module (`views` for chat completions and friends, `views_anthropic` for
Messages, `views_responses` for the Responses API) imports only this module, never another
surface: a surface is a pair of translations over the same engine, not a copy of another.

The views are plain async Django views, not DRF's: the proxy uses none of what DRF adds
(authentication, permission and throttle classes, parsers, content negotiation, the
`Request` wrapper), and an A/B measured the chat view 1.33x faster without it (issue 20;
the decision is recorded in docs/architecture.md). DRF stays where it earns its cost, the
management API under /api/. /v1/ also bypasses the site's middleware stack (routing/asgi.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC

import orjson
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, StreamingHttpResponse
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from routing import engine
from routing.auth import authenticate
from routing.errors import GatewayError, bad_request, json_bytes_response, openai_error_response
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
    return json_bytes_response(orjson.dumps(data), status=status, headers=headers)


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
    return json_bytes_response(orjson.dumps(body), status=err.status, headers=err.headers)


# --- the views' base -------------------------------------------------------------------------


class GatewayView(View):
    """A /v1/ view: async handlers named after the HTTP methods; every exception, a
    `GatewayError` or not, becomes an error answer in the surface's shape (never a 500 page).
    Keys are checked by `routing.auth.authenticate`, limits by the engine."""

    @classmethod
    def as_view(cls, **initkwargs):
        # A bearer key, not a cookie, authenticates /v1/: no CSRF (as DRF's views were).
        return csrf_exempt(super().as_view(**initkwargs))

    async def dispatch(self, request, *args, **kwargs):
        method = request.method.lower()
        handler = getattr(self, method, None) if method in self.http_method_names else None
        try:
            if handler is None or method == "options":
                raise GatewayError(
                    405, f'Method "{request.method}" not allowed.', code="method_not_allowed"
                )
            return await handler(request, *args, **kwargs)
        except Exception as exc:
            return self.handle_exception(exc)

    def handle_exception(self, exc):
        return openai_error_response(gateway_error_from(exc))


class AnthropicView(GatewayView):
    """A view on Anthropic's surface: errors in Anthropic's shape."""

    def handle_exception(self, exc):
        request_id = getattr(getattr(self, "request", None), "request_id", "") or ""
        return anthropic_error_response(gateway_error_from(exc), request_id=request_id)
