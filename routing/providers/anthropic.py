"""Anthropic's Messages API: `{base_url}/v1/messages` (and `/v1/messages/count_tokens`),
`x-api-key`, `anthropic-version`; SSE streams of typed events. The native surface is
Anthropic's, so `/v1/messages` passes through untranslated; the OpenAI surface comes from
the base class through `routing.translate.openai_anthropic`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from routing.http import UpstreamClient, UpstreamTransportError
from routing.providers.base import (
    ChatResult,
    Provider,
    UpstreamError,
    UpstreamTarget,
    Usage,
    about_the_key,
    malformed_error,
    post_json,
    retry_after_of,
    sse_lines,
    stream_broke,
    stream_open,
)
from routing.translate.openai_anthropic import usage_from_anthropic

DEFAULT_VERSION = "2023-06-01"
# Fields of a Messages request that /v1/messages/count_tokens refuses.
GENERATION_ONLY = frozenset(
    ("max_tokens", "stream", "metadata", "temperature", "top_p", "top_k", "stop_sequences",
     "service_tier")
)  # fmt: skip
FORWARDED = ("anthropic-version", "anthropic-beta", "x-claude-code-session-id")


def error_from_response(status: int, content: bytes, response) -> UpstreamError:
    """`{"type": "error", "error": {"type", "message"}}` -> UpstreamError. 429, 5xx and 529
    (overloaded) are retryable; 401, an authentication_error, a permission_error about the key
    and an exhausted credit balance disable the upstream (once a probe confirms it); any other
    403 is about this request and cools the route down for its organization only."""
    message, error_type = f"upstream answered HTTP {status}", None
    try:
        data = orjson.loads(content)
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict):
            message = str(err.get("message") or message)[:500]
            error_type = err.get("type")
    except orjson.JSONDecodeError:
        pass
    about_key = error_type == "authentication_error" or (
        error_type == "permission_error" and about_the_key(message)
    )
    if status == 401 or about_key or "credit balance is too low" in message.lower():
        return UpstreamError(
            message, status=status, disable=True, error_type=error_type or "authentication_error"
        )
    if status == 403:  # a permission_error about this request, not about the key
        return UpstreamError(
            message, status=status, tenant=True, error_type=error_type or "permission_error"
        )
    retryable = status in (408, 409, 429) or status >= 500
    return UpstreamError(
        message,
        status=status,
        retryable=retryable,
        error_type=error_type,
        retry_after=retry_after_of(response),
    )


class AnthropicProvider(Provider):
    native_surface = "anthropic"

    def _headers(self, target: UpstreamTarget, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"content-type": "application/json", "anthropic-version": DEFAULT_VERSION}
        for name, value in (extra or {}).items():
            if name.lower() in FORWARDED and value:
                headers[name.lower()] = value
        if target.api_key:
            headers["x-api-key"] = target.api_key
        return headers

    def _url(self, target: UpstreamTarget, path: str) -> str:
        base = target.base_url.rstrip("/")
        if base.endswith("/v1"):  # tolerate a base_url given the OpenAI way
            base = base[:-3]
        return base + path

    async def _post_json(self, client, target, path: str, body: dict, headers) -> dict:
        return await post_json(
            client,
            self._url(target, path),
            body=body,
            headers=self._headers(target, headers),
            timeout=target.timeout,
            errors=error_from_response,
        )

    async def messages(self, *, client, target, model, body, headers) -> ChatResult:
        upstream_body = {**body, "model": model}
        upstream_body.pop("stream", None)
        data = await self._post_json(client, target, "/v1/messages", upstream_body, headers)
        if data.get("type") != "message" or not isinstance(data.get("content"), list):
            raise malformed_error()
        usage = usage_from_anthropic(data.get("usage"))
        if usage is None:
            from routing.translate.tokens import estimate_tokens_anthropic, text_tokens

            text = "".join(str(b.get("text") or "") for b in data["content"] if isinstance(b, dict))
            usage = Usage(
                prompt_tokens=estimate_tokens_anthropic(body),
                completion_tokens=text_tokens(text),
                estimated=True,
            )
        return ChatResult(body=data, usage=usage)

    def messages_stream(
        self, *, client, target, model, body, headers, state
    ) -> AsyncIterator[dict]:
        return self._stream(
            client, target, {**body, "model": model, "stream": True}, headers, state
        )

    async def _stream(
        self, client: UpstreamClient, target: UpstreamTarget, body: dict, headers, state
    ) -> AsyncIterator[dict]:
        response = await stream_open(
            client,
            self._url(target, "/v1/messages"),
            body=body,
            headers=self._headers(target, headers),
            timeout=target.timeout,
            errors=error_from_response,
        )
        usage_raw: dict = {}
        try:
            stopped = False
            try:
                async for line in sse_lines(response):
                    if not line.startswith(b"data:"):
                        continue
                    try:
                        event = orjson.loads(line[5:].strip())
                    except orjson.JSONDecodeError as exc:
                        raise malformed_error("stream event") from exc
                    if not isinstance(event, dict):
                        continue
                    kind = event.get("type")
                    if kind == "error":
                        err = event.get("error") or {}
                        raise UpstreamError(
                            str(err.get("message") or "upstream stream error")[:500],
                            status=529 if err.get("type") == "overloaded_error" else 502,
                            retryable=True,
                            error_type=err.get("type"),
                        )
                    if kind == "message_start":
                        usage_raw.update((event.get("message") or {}).get("usage") or {})
                        state.usage = usage_from_anthropic(usage_raw)
                    elif kind == "content_block_delta":
                        delta = event.get("delta") or {}
                        piece = delta.get("text") or delta.get("partial_json") or ""
                        piece = piece or delta.get("thinking") or ""
                        if piece:
                            state.delivered_text.append(str(piece))
                    elif kind == "message_delta":
                        usage_raw.update(
                            {k: v for k, v in (event.get("usage") or {}).items() if v is not None}
                        )
                        state.usage = usage_from_anthropic(usage_raw)
                        stop = (event.get("delta") or {}).get("stop_reason")
                        if stop:
                            state.finish_reason = stop
                    elif kind == "message_stop":
                        stopped = True
                    yield event
                    if stopped:
                        break
            except UpstreamTransportError as exc:
                raise stream_broke(exc) from exc
            if not stopped:
                raise UpstreamError("upstream stream ended early", status=502, retryable=True)
        finally:
            await response.aclose()

    async def count_tokens(self, *, client, target, model, body, headers) -> int | None:
        # As the client sent it (new fields such as context_management, output_config reach
        # the upstream), minus what only a generation takes.
        upstream_body = {k: v for k, v in body.items() if k not in GENERATION_ONLY}
        upstream_body["model"] = model
        data = await self._post_json(
            client, target, "/v1/messages/count_tokens", upstream_body, headers
        )
        try:
            return int(data["input_tokens"])
        except (KeyError, TypeError, ValueError):
            return None
