"""The provider interface: every upstream kind is one adapter implementing this.

Two client surfaces exist: OpenAI chat completions (`/v1/chat/completions`) and Anthropic
Messages (`/v1/messages`). Each adapter implements its *native* surface; the base class
derives the other surface by translation (`routing.translate`), so an Anthropic upstream
serves `/v1/messages` without a lossy round trip and still serves `/v1/chat/completions`.

Failures are raised as `UpstreamError`; its flags drive retry, fallback and cooldown.
Streams are async iterators of already-parsed events (dicts) in the surface's own format:
OpenAI `chat.completion.chunk` dicts, or Anthropic event dicts (each with its "type").
The final usage is reported through the `StreamState` the caller passes in, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from accounts.redaction import redact_secrets
from routing.http import UpstreamClient, UpstreamStream, UpstreamTransportError

_SAFE_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}$")


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # part of prompt_tokens that was read from the provider's cache
    estimated: bool = False  # True when counted from text because the upstream reported none
    # Further classes, each a part of prompt_tokens (input side) or completion_tokens (output).
    cache_write_tokens: int = 0  # written to a 5-minute cache (Anthropic)
    cache_write_1h_tokens: int = 0  # written to a 1-hour cache (Anthropic)
    input_audio_tokens: int = 0
    reasoning_tokens: int = 0  # thinking / reasoning (OpenAI o-series, Gemini thoughts)
    output_audio_tokens: int = 0
    # What the upstream said the request cost (OpenRouter-style usage.cost, a cost header).
    reported_cost: Decimal | None = None
    # What the gateway corrected in the reported usage (routing.usage_guard).
    anomalies: list = field(default_factory=list)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class UpstreamTarget:
    """What an adapter needs to call one upstream (decrypted key; never log it)."""

    name: str
    provider: str
    base_url: str
    api_key: str
    timeout: float
    # An `openai` upstream that serves /v1/responses itself (routing file `responses: true`).
    responses: bool = False


class UpstreamError(Exception):
    """An upstream failed. `retryable`: try again / fall back (connect errors, timeouts,
    408, 429, 5xx, Anthropic 529). `disable`: the upstream's credentials or quota are dead
    (401, invalid_api_key, insufficient_quota), once a probe confirms it (routing.probe).
    `tenant`: the answer is about this request (e.g. a 403 content or policy refusal): the
    route cools down for the caller's organization only, and the next route may serve it.
    Non-retryable 4xx are returned to the client with `status`, `error_type` and `message`.
    The message is redacted at construction (upstreams echo keys in errors), and the type
    is kept only when it looks like an identifier.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        disable: bool = False,
        error_type: str | None = None,
        retry_after: float | None = None,
        tenant: bool = False,
    ) -> None:
        message = redact_secrets(str(message))
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.disable = disable
        self.error_type = (
            error_type if isinstance(error_type, str) and _SAFE_TYPE.match(error_type) else None
        )
        self.retry_after = retry_after
        self.tenant = tenant


_ABOUT_THE_KEY = re.compile(
    r"(?i)api[ _-]?key|credential|authenticat|unauthori[sz]ed|access token|suspended|"
    r"billing|credit balance|quota|unregistered caller|(?:organization|account|project)\b.{0,40}\b"
    r"(?:disabled|deactivated|deleted|not (?:been )?(?:used|enabled))"
)


def about_the_key(message: str) -> bool:
    """Does an upstream's 403 talk about its own credentials, account or quota (rather than
    about this request's content)? Only then may it disable the upstream (after a probe)."""
    return bool(_ABOUT_THE_KEY.search(message or ""))


def retry_after_of(response) -> float | None:
    """The upstream's `Retry-After` in seconds, when it sent a number (`response`: anything
    with case-insensitive `headers`)."""
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def connect_error(exc: Exception) -> UpstreamError:
    """A transport failure (refused, reset, timed out): always worth the next try."""
    if isinstance(exc, UpstreamTransportError) and exc.timeout:
        return UpstreamError("upstream timed out", status=504, retryable=True)
    reason = exc.reason if isinstance(exc, UpstreamTransportError) else type(exc).__name__
    return UpstreamError(f"upstream unreachable ({reason})", status=502, retryable=True)


def stream_broke(exc: UpstreamTransportError) -> UpstreamError:
    """The connection failed or timed out after the stream began."""
    return UpstreamError(f"upstream stream broke ({exc.reason})", status=502, retryable=True)


def malformed_error(what: str = "response") -> UpstreamError:
    return UpstreamError(f"upstream sent a malformed {what}", status=502, retryable=True)


# (status, body, response with `.headers`) -> the provider's UpstreamError
ErrorMapper = Callable[[int, bytes, Any], UpstreamError]


async def post_json(
    client: UpstreamClient,
    url: str,
    *,
    body: dict,
    headers: dict,
    timeout: float,
    errors: ErrorMapper,
    response_headers: dict | None = None,
) -> dict:
    """POST `body`, answer the JSON object; every failure as the provider's UpstreamError.
    `response_headers`, when given, receives the answer's headers (names in lower case, e.g.
    a reported cost)."""
    try:
        response = await client.post(
            url, content=orjson.dumps(body), headers=headers, timeout=timeout
        )
    except UpstreamTransportError as exc:
        raise connect_error(exc) from exc
    if response.status >= 400:
        raise errors(response.status, response.content, response)
    if response_headers is not None:
        response_headers.update((name.lower(), value) for name, value in response.headers.items())
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise malformed_error() from exc
    if not isinstance(data, dict):
        raise malformed_error()
    return data


async def stream_open(
    client: UpstreamClient,
    url: str,
    *,
    body: dict,
    headers: dict,
    timeout: float,
    errors: ErrorMapper,
) -> UpstreamStream:
    """Send a streaming POST; a refused one is read, closed and raised before any event, so
    the engine may still fall back. The caller closes the stream it gets."""
    try:
        response = await client.stream(
            url, content=orjson.dumps(body), headers=headers, timeout=timeout
        )
    except UpstreamTransportError as exc:
        raise connect_error(exc) from exc
    if response.status >= 400:
        try:
            content = await response.read()
        except UpstreamTransportError:
            content = b""
        finally:
            await response.aclose()
        raise errors(response.status, content, response)
    return response


async def sse_lines(response: UpstreamStream) -> AsyncIterator[bytes]:
    """The body's lines as bytes, without their line ends: orjson parses bytes, so nothing
    is decoded to text (profile: httpx's `aiter_lines` decoded and re-split every chunk).
    A broken connection raises `UpstreamTransportError`."""
    pending = b""
    async for data in response.chunks():
        if pending:
            data = pending + data
        lines = data.split(b"\n")
        pending = lines.pop()
        for line in lines:
            yield line.rstrip(b"\r")
    if pending:
        yield pending.rstrip(b"\r")


class UnsupportedFeature(Exception):
    """The request uses a feature the target format cannot express: answer 400, never drop it."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(slots=True)
class StreamState:
    """Filled in by an adapter while it streams: usage when the upstream reports it, the
    text delivered so far (for estimation when it does not), and the finish reason."""

    usage: Usage | None = None
    delivered_text: list[str] = field(default_factory=list)
    finish_reason: str | None = None


@dataclass(slots=True)
class ChatResult:
    body: dict  # the complete response in the surface's format
    usage: Usage


class Provider:
    """Base adapter. Subclasses set `native_surface` and implement that surface's methods."""

    native_surface: str = "openai"  # "openai" or "anthropic"

    # --- OpenAI chat-completions surface ------------------------------------------------
    async def chat(
        self,
        *,
        client: UpstreamClient,
        target: UpstreamTarget,
        model: str,
        body: dict,
        headers: dict[str, str],
    ) -> ChatResult:
        """`body` is an OpenAI chat request with `model` already set to the upstream model."""
        if self.native_surface == "anthropic":
            from routing.translate import openai_anthropic as tr

            result = await self.messages(
                client=client,
                target=target,
                model=model,
                body=tr.request_to_anthropic(body),
                headers=headers,
            )
            return ChatResult(
                body=tr.response_to_openai(result.body, model=body.get("model", model)),
                usage=result.usage,
            )
        raise NotImplementedError

    def chat_stream(
        self,
        *,
        client: UpstreamClient,
        target: UpstreamTarget,
        model: str,
        body: dict,
        headers: dict[str, str],
        state: StreamState,
    ) -> AsyncIterator[dict]:
        """Yields OpenAI `chat.completion.chunk` dicts. Raise `UpstreamError` before the first
        yield for failures that allow fallback; after it, a broken stream raises too."""
        if self.native_surface == "anthropic":
            from routing.translate import openai_anthropic as tr

            events = self.messages_stream(
                client=client,
                target=target,
                model=model,
                body=tr.request_to_anthropic(body),
                headers=headers,
                state=state,
            )
            return tr.stream_to_openai(events, model=body.get("model", model), state=state)
        raise NotImplementedError

    async def embeddings(
        self, *, client: UpstreamClient, target: UpstreamTarget, model: str, body: dict
    ) -> ChatResult:
        raise UnsupportedFeature(
            f"embeddings are not available through the {self.native_surface} provider"
        )

    # --- Anthropic Messages surface ---------------------------------------------------------
    async def messages(
        self,
        *,
        client: UpstreamClient,
        target: UpstreamTarget,
        model: str,
        body: dict,
        headers: dict[str, str],
    ) -> ChatResult:
        """`body` is an Anthropic Messages request; the result body is an Anthropic message."""
        from routing.translate import openai_anthropic as tr

        request = _effort_for(target, model, tr.request_to_openai(body))
        try:
            result = await self.chat(
                client=client, target=target, model=model, body=request, headers=headers
            )
        except UpstreamError as exc:
            if not _effort_refused(exc, request, target, model):
                raise
            result = await self.chat(
                client=client,
                target=target,
                model=model,
                body=_effort_for(target, model, request),
                headers=headers,
            )
        return ChatResult(
            body=tr.response_to_anthropic(result.body, model=body.get("model", model)),
            usage=result.usage,
        )

    def messages_stream(
        self,
        *,
        client: UpstreamClient,
        target: UpstreamTarget,
        model: str,
        body: dict,
        headers: dict[str, str],
        state: StreamState,
    ) -> AsyncIterator[dict]:
        """Yields Anthropic stream event dicts (`message_start`, `content_block_delta`, ...)."""
        from routing.translate import openai_anthropic as tr

        def open_stream(request: dict) -> AsyncIterator[dict]:
            return self.chat_stream(
                client=client,
                target=target,
                model=model,
                body=_effort_for(target, model, request),
                headers=headers,
                state=state,
            )

        chunks = _with_effort_fallback(open_stream, tr.request_to_openai(body), target, model)
        return tr.stream_to_anthropic(chunks, model=body.get("model", model), state=state)

    async def count_tokens(
        self,
        *,
        client: UpstreamClient,
        target: UpstreamTarget,
        model: str,
        body: dict,
        headers: dict[str, str],
    ) -> int | None:
        """Anthropic-format body; None when the upstream cannot count (the caller estimates)."""
        return None


# --- reasoning on translated /v1/messages ------------------------------------------------------
# Claude Code sends `thinking` / `output_config.effort` on every request; translated, they are a
# `reasoning_effort` that a model without reasoning (gpt-4o, a relay's open model) refuses with
# a 400. Such a refusal is retried once without it (nothing was generated, so nothing is
# charged twice), and the (upstream, model) pair is remembered in this process so the next
# requests go without it at once.
_NO_REASONING: set[tuple[str, str]] = set()


def _effort_for(target: UpstreamTarget, model: str, request: dict) -> dict:
    if "reasoning_effort" in request and (target.name, model) in _NO_REASONING:
        return {k: v for k, v in request.items() if k != "reasoning_effort"}
    return request


def _effort_refused(exc: UpstreamError, request: dict, target: UpstreamTarget, model: str) -> bool:
    """True (and remembered) when the upstream refused the request for its reasoning setting."""
    if "reasoning_effort" not in request or exc.status != 400 or exc.retryable or exc.disable:
        return False
    text = exc.message.lower()
    if "reasoning" not in text and "thinking" not in text:
        return False
    _NO_REASONING.add((target.name, model))
    return True


async def _with_effort_fallback(
    open_stream: Callable[[dict], AsyncIterator[dict]],
    request: dict,
    target: UpstreamTarget,
    model: str,
) -> AsyncIterator[dict]:
    """A stream opened with `request`; refused for its reasoning setting before the first
    chunk, opened again without it."""
    chunks = open_stream(request)
    try:
        try:
            first = await chunks.__anext__()
        except UpstreamError as exc:
            if not _effort_refused(exc, request, target, model):
                raise
            await _aclose(chunks)
            chunks = open_stream(request)
            first = await chunks.__anext__()
        yield first
        async for chunk in chunks:
            yield chunk
    except StopAsyncIteration:
        return
    finally:
        await _aclose(chunks)


async def _aclose(iterator) -> None:
    closer = getattr(iterator, "aclose", None)
    if closer is not None:
        await closer()
