"""Google Gemini: `{base_url}/v1beta/models/{model}:generateContent` and
`:streamGenerateContent?alt=sse`, key in `x-goog-api-key`, usage from `usageMetadata`.
Native surface: OpenAI (translated by `routing.translate.openai_gemini`); the Anthropic
surface comes from the base class (Anthropic -> OpenAI -> Gemini)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import orjson

from routing.http import UpstreamTransportError
from routing.providers.base import (
    ChatResult,
    Provider,
    UpstreamError,
    UpstreamTarget,
    about_the_key,
    malformed_error,
    post_json,
    retry_after_of,
    sse_lines,
    stream_broke,
    stream_open,
)
from routing.translate import openai_gemini as tr

DISABLING_STATUSES = ("PERMISSION_DENIED", "UNAUTHENTICATED")


def error_from_response(status: int, content: bytes, response) -> UpstreamError:
    """`{"error": {"code", "message", "status"}}` -> UpstreamError. A bad key is a 400
    INVALID_ARGUMENT "API key not valid": it disables the upstream like 401/403."""
    message, kind = f"upstream answered HTTP {status}", None
    try:
        data = orjson.loads(content)
        if isinstance(data, list) and data:
            data = data[0]
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict):
            message = str(err.get("message") or message)[:500]
            kind = err.get("status")
    except orjson.JSONDecodeError:
        pass
    about_key = about_the_key(message) or "api key not valid" in message.lower()
    if (
        status == 401
        or kind == "UNAUTHENTICATED"
        or ((status == 403 or kind in DISABLING_STATUSES or status == 400) and about_key)
    ):
        return UpstreamError(message, status=status, disable=True, error_type=kind)
    if status == 403 or kind == "PERMISSION_DENIED":  # about this request, not the key
        return UpstreamError(message, status=status, tenant=True, error_type=kind)
    retryable = status in (408, 409, 429) or status >= 500
    return UpstreamError(
        message,
        status=status,
        retryable=retryable,
        error_type=kind or "invalid_request_error",
        retry_after=retry_after_of(response),
    )


class GeminiProvider(Provider):
    native_surface = "openai"

    def _url(self, target: UpstreamTarget, model: str, method: str) -> str:
        base = target.base_url.rstrip("/")
        for suffix in ("/v1beta", "/v1"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
        return f"{base}/v1beta/models/{quote(model, safe='-._')}:{method}"

    def _headers(self, target: UpstreamTarget) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if target.api_key:
            headers["x-goog-api-key"] = target.api_key
        return headers

    async def chat(self, *, client, target, model, body, headers) -> ChatResult:
        request = tr.request_to_gemini(body)
        data = await post_json(
            client,
            self._url(target, model, "generateContent"),
            body=request,
            headers=self._headers(target),
            timeout=target.timeout,
            errors=error_from_response,
        )
        result = tr.response_from_gemini(data, model=body.get("model") or model)
        usage = tr.usage_from_gemini(data.get("usageMetadata"))
        if usage is None:
            from routing.providers.base import Usage
            from routing.translate.tokens import estimate_tokens_openai, text_tokens

            text = str(result["choices"][0]["message"].get("content") or "")
            usage = Usage(
                prompt_tokens=estimate_tokens_openai(body),
                completion_tokens=text_tokens(text),
                estimated=True,
            )
        return ChatResult(body=result, usage=usage)

    def chat_stream(self, *, client, target, model, body, headers, state) -> AsyncIterator[dict]:
        request = tr.request_to_gemini(body)  # refuses before anything is sent
        responses = self._responses(client, target, model, request)
        return self._checked(
            tr.stream_from_gemini(responses, model=body.get("model") or model, state=state), state
        )

    async def _checked(self, chunks: AsyncIterator[dict], state) -> AsyncIterator[dict]:
        async for chunk in chunks:
            yield chunk
        if state.finish_reason is None:
            raise UpstreamError("upstream stream ended early", status=502, retryable=True)

    async def _responses(self, client, target, model, request: dict) -> AsyncIterator[dict]:
        response = await stream_open(
            client,
            self._url(target, model, "streamGenerateContent") + "?alt=sse",
            body=request,
            headers=self._headers(target),
            timeout=target.timeout,
            errors=error_from_response,
        )
        try:
            try:
                async for line in sse_lines(response):
                    if not line.startswith(b"data:"):
                        continue
                    try:
                        data = orjson.loads(line[5:].strip())
                    except orjson.JSONDecodeError as exc:
                        raise malformed_error("stream event") from exc
                    if isinstance(data, dict) and "error" in data:
                        err = data.get("error") or {}
                        raise UpstreamError(
                            str(err.get("message") or "upstream stream error")[:500],
                            status=502,
                            retryable=True,
                        )
                    if isinstance(data, dict):
                        yield data
            except UpstreamTransportError as exc:
                raise stream_broke(exc) from exc
        finally:
            await response.aclose()
