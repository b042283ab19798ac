"""Anthropic's Messages surface under /v1/: `POST /v1/messages` and `/v1/messages/count_tokens`
(what Claude Code needs from a gateway behind `ANTHROPIC_BASE_URL`).

Same keys, limits, holds, charging and usage records as `/v1/chat/completions`: the engine
runs with surface "anthropic", and each adapter serves Messages natively (Anthropic) or by
translation (OpenAI-format, Gemini). Errors are Anthropic-shaped:
`{"type": "error", "error": {"type", "message"}}`.
"""

from __future__ import annotations

from collections.abc import Callable

from django.urls import path

from routing import engine
from routing.db import db_call
from routing.http import http_client
from routing.providers import get_provider
from routing.providers.base import UnsupportedFeature, UpstreamError
from routing.selectors import RouteEntry, model_entry_cached, model_entry_get
from routing.translate.openai_anthropic import messages_dropped
from routing.translate.tokens import estimate_tokens_anthropic
from routing.validation import MAX_TOKENS_LIMIT, messages_blocks_validate
from routing.views_base import (  # noqa: F401 - some re-exported: older imports name them here
    ANTHROPIC_ERROR_TYPES,
    AnthropicView,
    GatewayError,
    anthropic_error_response,
    anthropic_models_list,
    anthropic_sse_event,
    authenticate,
    bad_request,
    body_parse,
    json_response,
    settle_after_response,
    settled_response,
    sse_response,
)

FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta", "x-claude-code-session-id")
MESSAGE_ROLES = ("user", "assistant", "system")
ERROR_TYPES = ANTHROPIC_ERROR_TYPES


def forwarded_headers(request) -> dict[str, str]:
    """The client's `anthropic-version`, `anthropic-beta` (and Claude Code's session id), for
    Anthropic upstreams only: new beta values reach the upstream without a gateway change."""
    return {name: request.headers[name] for name in FORWARDED_HEADERS if request.headers.get(name)}


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def messages_validate(body: dict, *, count_only: bool = False) -> None:
    """The shape Anthropic's API demands, checked before any money is held."""
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise bad_request("model: a non-empty string is required.", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages: a non-empty array is required.", param="messages")
    for i, message in enumerate(messages):
        # `system` messages inside `messages` (Claude Code 2.1+ sends them after the first user
        # turn): instructions in place, forwarded as they are or translated (issue 13).
        if not isinstance(message, dict) or message.get("role") not in MESSAGE_ROLES:
            raise bad_request(
                f"messages.{i}: an object with role 'user', 'assistant' or 'system' is required.",
                param=f"messages.{i}",
            )
        content = message.get("content")
        if not isinstance(content, str | list):
            raise bad_request(
                f"messages.{i}.content: a string or an array of blocks is required.",
                param=f"messages.{i}.content",
            )
        if isinstance(content, list) and not all(
            isinstance(b, dict) and isinstance(b.get("type"), str) for b in content
        ):
            raise bad_request(
                f"messages.{i}.content: every block must be an object with a 'type'.",
                param=f"messages.{i}.content",
            )
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise bad_request("system: a string or an array of text blocks is required.")
    if body.get("tools") is not None and not isinstance(body["tools"], list):
        raise bad_request("tools: an array is required.", param="tools")
    messages_blocks_validate(body)
    if count_only:
        return
    max_tokens = body.get("max_tokens")
    if (
        isinstance(max_tokens, bool)
        or not isinstance(max_tokens, int)
        or not 1 <= max_tokens <= MAX_TOKENS_LIMIT
    ):
        raise bad_request(
            f"max_tokens: an integer between 1 and {MAX_TOKENS_LIMIT} is required.",
            param="max_tokens",
        )
    if "stream" in body and not isinstance(body["stream"], bool | None):
        raise bad_request("stream: a boolean is required.", param="stream")
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None and not _is_number(body[name]):
            raise bad_request(f"{name}: a number is required.", param=name)
    stops = body.get("stop_sequences")
    if stops is not None and (
        not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)
    ):
        raise bad_request("stop_sequences: an array of strings is required.")


def dropped_by_route(body: dict) -> Callable[[RouteEntry], list[str]]:
    """What each route leaves out of this request: nothing on an Anthropic upstream (the body
    is forwarded as sent), `messages_dropped` on a translated one (computed once, on use)."""
    names: list[list[str]] = []

    def dropped(route: RouteEntry) -> list[str]:
        if get_provider(route.target.provider).native_surface == "anthropic":
            return []
        if not names:
            names.append(messages_dropped(body))
        return names[0]

    return dropped


class MessagesView(AnthropicView):
    async def post(self, request):
        body = body_parse(request)
        ctx = await authenticate(request)
        messages_validate(body)
        public = body["model"]
        options = {
            "ctx": ctx,
            "body": body,
            "request_id": request.request_id,
            "surface": "anthropic",
            "upstream_headers": forwarded_headers(request),
            "dropped": dropped_by_route(body),
        }
        if body.get("stream"):
            handle = await engine.completion_stream(**options)

            def encode(event: dict) -> bytes:
                if event.get("type") == "message_start" and isinstance(event.get("message"), dict):
                    event["message"]["model"] = public
                return anthropic_sse_event(event)

            return sse_response(handle, encode=encode, done=None)
        result = await engine.completion_create(
            **options, settle_after_response=settle_after_response()
        )
        data = result.body
        if isinstance(data, dict):
            data = {**data, "model": public}
        return settled_response(result, data)


class CountTokensView(AnthropicView):
    """`{"input_tokens": N}` from the model's first usable route when it is Anthropic, else
    (or when that upstream cannot answer, or refuses the body) the local estimate. Never
    charged; answers for every route."""

    async def post(self, request):
        body = body_parse(request)
        ctx = await authenticate(request)
        messages_validate(body, count_only=True)
        name = body["model"]
        if not ctx.model_allowed(name):
            raise GatewayError(
                403, f"The model '{name}' is not allowed for this API key.", type="permission_error"
            )
        hit, entry = model_entry_cached(name=name)
        if not hit:
            entry = await db_call(model_entry_get, name=name)
        if entry is None:
            raise GatewayError(404, f"The model '{name}' does not exist.", param="model")
        chain = engine._order_chain(ctx, entry.routes)
        route = chain[0] if chain else None
        count = None
        if route is not None and route.target.provider == "anthropic":
            try:
                count = await get_provider("anthropic").count_tokens(
                    client=http_client(),
                    target=route.target,
                    model=route.upstream_model,
                    body=body,
                    headers=forwarded_headers(request),
                )
            except (UpstreamError, UnsupportedFeature):
                # Counting is advisory and never charged: a client (Claude Code sizes its
                # context with it) gets the local estimate rather than an error.
                count = None
        if count is None:
            count = estimate_tokens_anthropic(body)
        return json_response({"input_tokens": count})


urlpatterns = [
    path("messages", MessagesView.as_view(), name="messages"),
    path("messages/count_tokens", CountTokensView.as_view(), name="messages-count-tokens"),
]
