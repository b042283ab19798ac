"""The OpenAI-compatible surface under /v1/: thin async views over `routing.engine`.

Shared machinery (the lean async view, auth, body reading, error rendering, SSE) lives in
`routing.views_base`; this module imports only that, never another surface.
"""

from __future__ import annotations

from routing import engine
from routing.db import db_call
from routing.errors import GatewayError, openai_error_response
from routing.price_list import model_catalog
from routing.selectors import models_for_key
from routing.validation import chat_validate, embeddings_validate
from routing.views_base import (  # noqa: F401 - re-exported: older imports name them here
    GatewayView,
    anthropic_models_list,
    authenticate,
    body_parse,
    gateway_error_from,
    json_response,
    openai_sse_event,
    settle_after_response,
    settled_response,
    sse_response,
)

_gateway_error_from = gateway_error_from  # the name views_anthropic used to import


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
        request_id = request.GET.get("id") or ""
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
