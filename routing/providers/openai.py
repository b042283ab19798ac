"""OpenAI and OpenAI-compatible relays: `{base_url}/chat/completions`, `/embeddings`,
Bearer key, SSE streams with `stream_options.include_usage` for the final usage.
An upstream flagged `responses` also gets /v1/responses requests natively at
`{base_url}/responses` (the canonical chat body carries them, routing.translate.responses)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal, InvalidOperation

import orjson

from routing.http import UpstreamClient, UpstreamTransportError
from routing.providers.base import (
    ChatResult,
    Provider,
    StreamState,
    UpstreamError,
    UpstreamTarget,
    Usage,
    malformed_error,
    post_json,
    retry_after_of,
    sse_lines,
    stream_broke,
    stream_open,
)
from routing.translate import responses as responses_tr
from routing.translate.responses import NATIVE_KEY


def _count(data: dict, key: str) -> int:
    value = data.get(key) if isinstance(data, dict) else None
    return int(value or 0)


def reported_cost_of(value) -> Decimal | None:
    """An upstream's own figure for the request's cost (`usage.cost`, a cost header)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        cost = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return cost if cost.is_finite() and cost >= 0 else None


def reported_cost_header(headers) -> Decimal | None:
    """A cost header some relays send (`ROUTING_REPORTED_COST_HEADERS`, e.g. LiteLLM's)."""
    from django.conf import settings

    for name in getattr(settings, "ROUTING_REPORTED_COST_HEADERS", ()):
        value = headers.get(name)
        if value is not None:
            return reported_cost_of(value)
    return None


def usage_from_openai(data: dict | None) -> Usage | None:
    """OpenAI usage, every class: `prompt_tokens_details` {cached_tokens, audio_tokens,
    cache_write_tokens (relays)}, `completion_tokens_details` {reasoning_tokens, audio_tokens},
    and a relay's `cost` (OpenRouter)."""
    if not isinstance(data, dict):
        return None
    try:
        prompt = int(data.get("prompt_tokens") or 0)
        completion = int(data.get("completion_tokens") or 0)
        details = data.get("prompt_tokens_details") or {}
        out_details = data.get("completion_tokens_details") or {}
        return Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            cached_tokens=_count(details, "cached_tokens"),
            cache_write_tokens=_count(details, "cache_write_tokens"),
            input_audio_tokens=_count(details, "audio_tokens"),
            reasoning_tokens=_count(out_details, "reasoning_tokens"),
            output_audio_tokens=_count(out_details, "audio_tokens"),
            reported_cost=reported_cost_of(data.get("cost")),
        )
    except (TypeError, ValueError):
        return None


def error_from_response(status: int, content: bytes, response) -> UpstreamError:
    """Map an upstream HTTP error to the flags that drive retry, fallback and disabling."""
    message, error_type, code = f"upstream answered HTTP {status}", None, None
    try:
        data = orjson.loads(content)
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict):
            message = str(err.get("message") or message)[:500]
            error_type = err.get("type")
            code = err.get("code")
    except orjson.JSONDecodeError:
        pass
    credentials = {"invalid_api_key", "insufficient_quota"} & {str(code), str(error_type)}
    if status == 401 or credentials:
        return UpstreamError(
            message,
            status=status,
            disable=True,
            error_type=error_type or (credentials.pop() if credentials else "authentication_error"),
        )
    if status == 403:  # a refusal of this request (content, policy, region): not the key's
        return UpstreamError(
            message, status=status, tenant=True, error_type=error_type or "permission_error"
        )
    retryable = status in (408, 409, 425, 429) or status >= 500
    return UpstreamError(
        message,
        status=status,
        retryable=retryable,
        error_type=error_type,
        retry_after=retry_after_of(response),
    )


class OpenAIProvider(Provider):
    native_surface = "openai"

    def _headers(self, target: UpstreamTarget, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if extra:
            headers.update(extra)
        if target.api_key:
            headers["authorization"] = f"Bearer {target.api_key}"
        return headers

    async def _post_json(
        self,
        client: UpstreamClient,
        target: UpstreamTarget,
        path: str,
        body: dict,
        headers,
        response_headers: dict | None = None,
    ) -> dict:
        return await post_json(
            client,
            target.base_url.rstrip("/") + path,
            body=body,
            headers=self._headers(target, headers),
            timeout=target.timeout,
            errors=error_from_response,
            response_headers=response_headers,
        )

    async def chat(self, *, client, target, model, body, headers) -> ChatResult:
        if NATIVE_KEY in body:
            if target.responses:
                return await self._responses(client, target, model, body, headers)
            body = {k: v for k, v in body.items() if k != NATIVE_KEY}
        answered: dict = {}
        data = await self._post_json(
            client, target, "/chat/completions", {**body, "model": model}, headers, answered
        )
        if not isinstance(data.get("choices"), list):
            raise UpstreamError(
                "upstream sent a response without choices", status=502, retryable=True
            )
        usage = usage_from_openai(data.get("usage"))
        if usage is None:
            from routing.pricing import prompt_tokens_estimate, tokens_estimate

            text = "".join(
                str((c.get("message") or {}).get("content") or "")
                for c in data["choices"]
                if isinstance(c, dict)
            )
            usage = Usage(
                prompt_tokens=prompt_tokens_estimate(body),
                completion_tokens=tokens_estimate(text),
                estimated=True,
            )
        if usage.reported_cost is None:
            usage.reported_cost = reported_cost_header(answered)
        return ChatResult(body=data, usage=usage)

    def chat_stream(self, *, client, target, model, body, headers, state) -> AsyncIterator[dict]:
        if NATIVE_KEY in body:
            if target.responses:
                native = {**body[NATIVE_KEY], "model": model, "stream": True}
                return self._responses_stream(client, target, native, headers, state)
            body = {k: v for k, v in body.items() if k != NATIVE_KEY}
        upstream_body = {**body, "model": model, "stream": True}
        options = dict(upstream_body.get("stream_options") or {})
        options["include_usage"] = True
        upstream_body["stream_options"] = options
        return self._stream(client, target, upstream_body, headers, state)

    async def _stream(
        self,
        client: UpstreamClient,
        target: UpstreamTarget,
        body: dict,
        headers,
        state: StreamState,
    ) -> AsyncIterator[dict]:
        response = await stream_open(
            client,
            target.base_url.rstrip("/") + "/chat/completions",
            body=body,
            headers=self._headers(target, headers),
            timeout=target.timeout,
            errors=error_from_response,
        )
        header_cost = reported_cost_header(response.headers)
        try:
            done = False
            try:
                async for line in sse_lines(response):
                    if not line.startswith(b"data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        done = True
                        break
                    try:
                        chunk = orjson.loads(payload)
                    except orjson.JSONDecodeError as exc:
                        raise malformed_error("stream event") from exc
                    if not isinstance(chunk, dict):
                        continue
                    if "error" in chunk and "choices" not in chunk:
                        err = chunk.get("error") or {}
                        message = err.get("message") if isinstance(err, dict) else str(err)
                        raise UpstreamError(
                            str(message or "upstream stream error")[:500],
                            status=502,
                            retryable=True,
                        )
                    usage = usage_from_openai(chunk.get("usage"))
                    if usage is not None:
                        if usage.reported_cost is None:
                            usage.reported_cost = header_cost
                        state.usage = usage
                    for choice in chunk.get("choices") or ():
                        if not isinstance(choice, dict):
                            continue
                        delta = choice.get("delta") or {}
                        if isinstance(delta, dict):
                            text = delta.get("content")
                            if isinstance(text, str) and text:
                                state.delivered_text.append(text)
                            for call in delta.get("tool_calls") or ():
                                fn = call.get("function") if isinstance(call, dict) else None
                                if isinstance(fn, dict):
                                    state.delivered_text.append(
                                        str(fn.get("name") or "") + str(fn.get("arguments") or "")
                                    )
                        if choice.get("finish_reason"):
                            state.finish_reason = choice["finish_reason"]
                    yield chunk
            except UpstreamTransportError as exc:
                raise stream_broke(exc) from exc
            if not done and state.finish_reason is None:
                raise UpstreamError("upstream stream ended early", status=502, retryable=True)
        finally:
            await response.aclose()

    # --- /v1/responses, natively (upstreams flagged `responses`) ---------------------------

    async def _responses(self, client, target, model, body, headers) -> ChatResult:
        native = {**body[NATIVE_KEY], "model": model, "stream": False}
        data = await self._post_json(client, target, "/responses", native, headers)
        if not isinstance(data.get("output"), list):
            raise UpstreamError(
                "upstream sent a response without output", status=502, retryable=True
            )
        chat = responses_tr.native_to_chat(data)
        usage = usage_from_openai(chat.get("usage"))
        if usage is None:
            from routing.pricing import prompt_tokens_estimate, tokens_estimate

            text = str(chat["choices"][0]["message"].get("content") or "")
            usage = Usage(
                prompt_tokens=prompt_tokens_estimate(body),
                completion_tokens=tokens_estimate(text),
                estimated=True,
            )
        return ChatResult(body=chat, usage=usage)

    async def _responses_stream(
        self, client: UpstreamClient, target: UpstreamTarget, body: dict, headers, state
    ) -> AsyncIterator[dict]:
        """Native Responses events, each wrapped in a chat chunk the engine can read."""
        response = await stream_open(
            client,
            target.base_url.rstrip("/") + "/responses",
            body=body,
            headers=self._headers(target, headers),
            timeout=target.timeout,
            errors=error_from_response,
        )
        try:
            ended = False
            try:
                async for line in sse_lines(response):
                    if not line.startswith(b"data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        break
                    try:
                        event = orjson.loads(payload)
                    except orjson.JSONDecodeError as exc:
                        raise malformed_error("stream event") from exc
                    if not isinstance(event, dict):
                        continue
                    kind = event.get("type")
                    if kind in ("error", "response.failed"):
                        err = event.get("error") or (event.get("response") or {}).get("error")
                        message = event.get("message") or (
                            err.get("message") if isinstance(err, dict) else None
                        )
                        raise UpstreamError(
                            str(message or "upstream response failed")[:500],
                            status=502,
                            retryable=True,
                        )
                    chunk = responses_tr.native_event_to_chunk(event)
                    usage = usage_from_openai(chunk.get("usage"))
                    if usage is not None:
                        state.usage = usage
                    for choice in chunk.get("choices") or ():
                        delta = choice.get("delta") or {}
                        if delta.get("content"):
                            state.delivered_text.append(delta["content"])
                        if choice.get("finish_reason"):
                            state.finish_reason = choice["finish_reason"]
                    yield chunk
                    if kind in ("response.completed", "response.incomplete"):
                        ended = True
                        break
            except UpstreamTransportError as exc:
                raise stream_broke(exc) from exc
            if not ended:
                raise UpstreamError("upstream stream ended early", status=502, retryable=True)
        finally:
            await response.aclose()

    async def embeddings(self, *, client, target, model, body) -> ChatResult:
        data = await self._post_json(client, target, "/embeddings", {**body, "model": model}, None)
        usage = usage_from_openai(data.get("usage"))
        if usage is None:
            from routing.pricing import prompt_tokens_estimate

            usage = Usage(prompt_tokens=prompt_tokens_estimate(body), estimated=True)
        usage.completion_tokens = 0
        return ChatResult(body=data, usage=usage)
