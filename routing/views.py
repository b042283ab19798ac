"""The OpenAI-compatible surface under /v1/: thin async views over `routing.engine`.

DRF's machinery is kept to the minimum (no authentication/permission/throttle classes,
no parsers: the body is read once with orjson) because this is the hot path, and
`GatewayView.async_dispatch` skips adrf's `initial()` (a thread hop per request). /v1/ also
bypasses the site's middleware stack (routing/asgi.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import orjson
from adrf.views import APIView
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, StreamingHttpResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.renderers import JSONRenderer

from routing import engine
from routing.auth import authenticate
from routing.catalog import model_catalog
from routing.db import db_call
from routing.errors import GatewayError, openai_error_response
from routing.selectors import models_for_key
from routing.validation import body_parse, chat_validate, embeddings_validate

log = logging.getLogger("routing.views")


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


def _gateway_error_from(exc: Exception) -> GatewayError:
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


class GatewayView(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []
    parser_classes: list = []
    renderer_classes = [JSONRenderer]

    def handle_exception(self, exc):
        return openai_error_response(_gateway_error_from(exc))

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


def openai_sse_event(event: dict) -> bytes:
    return b"data: " + orjson.dumps(event) + b"\n\n"


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


class ChatCompletionsView(GatewayView):
    async def post(self, request):
        body = body_parse(request)
        ctx = await authenticate(request)
        chat_validate(body)
        request_id = request.request_id
        if body.get("stream"):
            handle = await engine.completion_stream(ctx=ctx, body=body, request_id=request_id)
            return sse_response(handle)
        result = await engine.completion_create(
            ctx=ctx,
            body=body,
            request_id=request_id,
            settle_after_response=settle_after_response(),
        )
        return settled_response(result, result.body)


class EmbeddingsView(GatewayView):
    async def post(self, request):
        body = body_parse(request)
        ctx = await authenticate(request)
        embeddings_validate(body)
        result = await engine.embeddings_create(
            ctx=ctx,
            body=body,
            request_id=request.request_id,
            settle_after_response=settle_after_response(),
        )
        return settled_response(result, result.body)


class ModelsView(GatewayView):
    async def get(self, request):
        ctx = await authenticate(request)
        models = await db_call(
            models_for_key, allowed_models=ctx.allowed_models, allowed_wallets=ctx.allowed_wallets
        )
        if request.headers.get("anthropic-version"):  # Anthropic SDK / Claude Code (issue 5)
            from routing.views_anthropic import anthropic_models_list

            return json_response(anthropic_models_list(models))
        catalog = await db_call(
            model_catalog,
            multiplier=ctx.price_multiplier,
            models=models,
            allowed_wallets=ctx.allowed_wallets,
        )
        pricing = {row["name"]: row["pricing"] for row in catalog}
        return json_response(
            {
                "object": "list",
                "data": [
                    {
                        "id": m.name,
                        "object": "model",
                        "created": int(m.created_at.timestamp()),
                        "owned_by": "tokenforge",
                        # Per wallet, after the organization's multiplier (as OpenRouter does).
                        **({"pricing": pricing[m.name]} if m.name in pricing else {}),
                    }
                    for m in models
                ],
            }
        )


class GenerationView(GatewayView):
    async def get(self, request):
        ctx = await authenticate(request)
        request_id = request.query_params.get("id") or ""
        if not request_id:
            raise GatewayError(
                400,
                "Query parameter 'id' is required.",
                param="id",
                code="missing_required_parameter",
            )
        if "\x00" in request_id:  # PostgreSQL text cannot hold NUL: a 500 otherwise (issue 8)
            raise GatewayError(
                400, "Query parameter 'id' is invalid.", param="id", code="invalid_value"
            )
        from routing.reports import generation_get

        data = await db_call(generation_get, org_id=ctx.org_id, request_id=request_id)
        if data is None:
            raise GatewayError(
                404, f"No generation with id '{request_id}'.", param="id", code="not_found"
            )
        return json_response(data)


class KeyView(GatewayView):
    async def get(self, request):
        ctx = await authenticate(request)
        from routing.reports import key_report

        return json_response(await db_call(key_report, ctx=ctx))


async def not_found(request, path: str = ""):
    return openai_error_response(GatewayError(404, f"Unknown path /v1/{path}.", code="unknown_url"))
