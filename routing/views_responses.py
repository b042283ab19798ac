"""OpenAI's Responses surface under /v1/: `POST /v1/responses` (streamed and not),
`GET|DELETE /v1/responses/{id}` and `GET /v1/responses/{id}/input_items` (issue 13).

Thin views: the request is translated once into the canonical chat shape
(`routing.translate.responses`) and goes through the same engine entry points as
/v1/chat/completions (keys, limits, holds, fallback, capture, usage record with
endpoint "responses"); the answer is translated back. Upstreams flagged `responses` get the
request natively. Errors keep OpenAI's shape, which the Responses API shares.
"""

from __future__ import annotations

import logging
import time

import orjson
from django.urls import path

from routing import engine
from routing.auth import authenticate
from routing.db import db_call
from routing.errors import GatewayError, bad_request
from routing.responses_store import (
    stored_response_delete,
    stored_response_get,
    stored_response_replay,
    stored_response_save,
)
from routing.translate import responses as tr
from routing.validation import body_parse
from routing.views_base import (
    GatewayView,
    json_response,
    settle_after_response,
    settled_response,
    sse_response,
)

log = logging.getLogger("routing.views_responses")


def responses_sse_event(event: dict) -> bytes:
    return (
        b"event: "
        + str(event.get("type") or "message").encode()
        + b"\ndata: "
        + orjson.dumps(event)
        + b"\n\n"
    )


def _not_found(response_id: str) -> GatewayError:
    return GatewayError(
        404,
        f"No response found with id '{response_id}'.",
        param="response_id",
        code="response_not_found",
    )


async def _history(ctx, body: dict) -> list[dict]:
    """The stored conversation `previous_response_id` continues (404 when this organization
    has no such response: unknown, deleted, stored with store=false, or another tenant's)."""
    previous = body.get("previous_response_id")
    if not previous:
        return []
    replay = await db_call(stored_response_replay, org_id=ctx.org_id, response_id=previous)
    if replay is None:
        raise GatewayError(
            404,
            f"Previous response with id '{previous}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    return replay


async def _save(*, ctx, request_id: str, response: dict, own: list, context: list) -> None:
    try:
        await db_call(
            stored_response_save,
            org_id=ctx.org_id,
            api_key_id=ctx.api_key_id,
            request_id=request_id,
            response=response,
            input_items=own,
            context_items=context,
        )
    except Exception:  # noqa: BLE001 - the answer was given and paid for; only GET misses it
        log.exception("storing response %s failed", response.get("id"))


class _EventsHandle:
    """The engine's stream handle seen as Responses events (what `sse_response` iterates)."""

    def __init__(self, handle: engine.StreamHandle, stream: tr.ResponseEventStream, on_end):
        self.handle = handle
        self.stream = stream
        self.on_end = on_end

    @property
    def headers(self) -> dict[str, str]:
        return self.handle.headers  # x-tokenforge-dropped included when the route dropped any

    async def events(self):
        for event in self.stream.start():
            yield event
        chunks = self.handle.events()
        try:
            async for chunk in chunks:
                for event in self.stream.feed(chunk):
                    yield event
        finally:
            await chunks.aclose()  # settles now, not when the generator is collected
        for event in self.stream.finish():
            yield event
        await self.on_end(self.stream.response)

    async def aclose(self) -> None:
        await self.handle.aclose()


class ResponsesView(GatewayView):
    async def post(self, request):
        body = body_parse(request)
        ctx = await authenticate(request)
        tr.request_validate(body)
        request_id = request.request_id
        sent = tr.input_items(body["input"]) if "input" in body else []
        own = tr.items_with_ids(sent)
        history = await _history(ctx, body)
        items = [*history, *own]
        native = tr.native_request(body, history=history, items=sent)
        chat, dropped = tr.request_to_chat(body, items=items, native=native)

        def dropped_for(route) -> list[str]:
            return [] if route.target.responses else dropped

        response_id, created_at, public = tr.new_id("resp"), int(time.time()), body["model"]
        store = body.get("store", True) is not False

        async def on_end(response: dict) -> None:
            if store and response.get("status") != "in_progress":
                await _save(
                    ctx=ctx, request_id=request_id, response=response, own=own, context=items
                )

        options = {
            "ctx": ctx,
            "body": chat,
            "request_id": request_id,
            "endpoint": "responses",
            "dropped": dropped_for,
        }
        if body.get("stream"):
            handle = await engine.completion_stream(**options)
            stream = tr.ResponseEventStream(
                body=body, response_id=response_id, created_at=created_at, model=public
            )
            wrapped = _EventsHandle(handle, stream, on_end)
            return sse_response(wrapped, encode=responses_sse_event, done=None)
        result = await engine.completion_create(
            **options, settle_after_response=settle_after_response()
        )
        usage = result.usage
        reported = result.body.get("usage") if isinstance(result.body, dict) else None
        response = tr.response_from_chat(
            result.body,
            body=body,
            response_id=response_id,
            created_at=created_at,
            model=public,
            usage={
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
                "completion_tokens_details": (reported or {}).get("completion_tokens_details")
                or {},
            },
        )
        await on_end(response)
        return settled_response(result, response)


class ResponseCompactView(GatewayView):
    """`POST /v1/responses/compact` (Codex's remote compaction): the conversation summarised
    by the model on whatever upstream serves it, billed like any request (endpoint
    "responses.compact"); never stored."""

    async def post(self, request):
        body = body_parse(request)
        ctx = await authenticate(request)
        tr.request_validate({k: v for k, v in body.items() if k != "stream"})
        items = tr.input_items(body["input"]) if "input" in body else []
        items = [*await _history(ctx, body), *items]
        if not items:
            raise bad_request("'input' must not be empty.", param="input", code="invalid_value")
        result = await engine.completion_create(
            ctx=ctx,
            body=tr.compact_request_to_chat(body, items=items),
            request_id=request.request_id,
            endpoint="responses.compact",
            settle_after_response=settle_after_response(),
        )
        choice = ((result.body or {}).get("choices") or [{}])[0] or {}
        summary = str((choice.get("message") or {}).get("content") or "")
        usage = result.usage
        compacted = {
            "id": tr.new_id("resp"),
            "object": "response.compaction",
            "created_at": int(time.time()),
            "output": tr.compacted_output(items, summary),
            "usage": tr.usage_object(
                {
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
                }
            ),
        }
        return settled_response(result, compacted)


class ResponseDetailView(GatewayView):
    async def get(self, request, response_id: str):
        ctx = await authenticate(request)
        stored = await db_call(stored_response_get, org_id=ctx.org_id, response_id=response_id)
        if stored is None:
            raise _not_found(response_id)
        return json_response(stored.response)

    async def delete(self, request, response_id: str):
        ctx = await authenticate(request)
        if not await db_call(stored_response_delete, org_id=ctx.org_id, response_id=response_id):
            raise _not_found(response_id)
        return json_response({"id": response_id, "object": "response.deleted", "deleted": True})


class ResponseInputItemsView(GatewayView):
    async def get(self, request, response_id: str):
        ctx = await authenticate(request)
        params = request.GET
        order = params.get("order") or "desc"
        if order not in ("asc", "desc"):
            raise bad_request("'order' must be asc or desc.", param="order", code="invalid_value")
        try:
            limit = int(params.get("limit") or 20)
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            raise bad_request(
                "'limit' must be an integer between 1 and 100.", param="limit", code="invalid_value"
            )
        stored = await db_call(stored_response_get, org_id=ctx.org_id, response_id=response_id)
        if stored is None:
            raise _not_found(response_id)
        items = list(stored.input_items)
        if order == "desc":
            items.reverse()
        after = params.get("after")
        if after:
            ids = [item.get("id") for item in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        page = items[:limit]
        return json_response(
            {
                "object": "list",
                "data": page,
                "first_id": page[0].get("id") if page else None,
                "last_id": page[-1].get("id") if page else None,
                "has_more": len(items) > limit,
            }
        )


urlpatterns = [
    path("responses", ResponsesView.as_view(), name="responses"),
    path("responses/compact", ResponseCompactView.as_view(), name="responses-compact"),
    path("responses/<str:response_id>", ResponseDetailView.as_view(), name="response-detail"),
    path(
        "responses/<str:response_id>/input_items",
        ResponseInputItemsView.as_view(),
        name="response-input-items",
    ),
]
