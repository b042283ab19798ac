"""What a request can cost at most, read from the body exactly as it goes upstream.

The hold is a promise about the request as sent (docs/billing.md): the engine decides the
output limit once (`output_limit`), writes it into the body it sends (`body_with_output_limit`),
and sizes the hold from that same body (`prompt_tokens_upper`, priced by `routing.pricing.hold_amount`). Every translator
reads the limit back through `output_tokens_requested`, so no two places read the client's
`max_tokens` / `max_completion_tokens` in different orders.

Input kinds and their bounds (tokens):
- text: half its UTF-8 bytes (a tokenizer never does better than ~2 bytes per token);
- token-id arrays (embeddings `input` / `prompt`): one token per id, arrays of arrays too;
- images: IMAGE_TOKENS_UPPER each (providers resize images to at most ~1,600 tokens);
- documents / files (PDF): DOCUMENT_TOKENS_PER_B64_CHAR per base64 character plus a page
  image, capped at DOCUMENT_TOKENS_CAP; one given by URL or id counts DOCUMENT_URL_TOKENS;
- audio: one token per AUDIO_B64_CHARS_PER_TOKEN base64 characters (>= 6x any provider's
  rate at 8 kbit/s);
- tool definitions, response formats, tool choice: their JSON text, plus TOOLS_OVERHEAD for
  the preamble a provider adds when tools are offered.
"""

from __future__ import annotations

import orjson

IMAGE_TOKENS_UPPER = 1600
DOCUMENT_TOKENS_PER_B64_CHAR = 2
DOCUMENT_TOKENS_CAP = 2_000_000
DOCUMENT_URL_TOKENS = 460_000  # 100 pages x (3,000 text + 1,600 page image)
AUDIO_B64_CHARS_PER_TOKEN = 8
PER_MESSAGE_OVERHEAD = 8
REQUEST_OVERHEAD = 32  # chat templates and provider preambles
TOOLS_OVERHEAD = 512  # the system prompt providers add for tool use (Anthropic: up to ~350)

# The fields a JSON schema or tool list travels in: counted as their whole JSON text.
_JSON_FIELDS = ("tools", "functions", "response_format", "tool_choice", "function_call")
_PROMPT_FIELDS = ("messages", "system", "input", "prompt", "instructions")
_SKIP_KEYS = frozenset(("type", "role", "cache_control", "id", "tool_call_id", "detail"))

# --- the output limit ------------------------------------------------------------------------


def _positive_int(value) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def output_tokens_requested(body: dict) -> int | None:
    """The client's output limit, read in ONE order everywhere: `max_completion_tokens`
    (OpenAI's current name) before `max_tokens`, then the Responses API's
    `max_output_tokens`."""
    for name in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = _positive_int(body.get(name))
        if value is not None:
            return value
    return None


def output_limit(body: dict, *, model_max: int | None, default: int) -> int:
    """The output limit the hold pays for and the upstream is sent: the client's, clamped to
    the model's `max_output_tokens`; without one, the model's limit, else `default`."""
    requested = output_tokens_requested(body)
    if requested is None:
        return model_max or default
    return min(requested, model_max) if model_max else requested


def body_with_output_limit(body: dict, *, limit: int, surface: str) -> dict:
    """`body` with exactly one output-limit field carrying `limit` (a shallow copy when it
    changes). The client's field name is kept; with none, OpenAI's `max_completion_tokens`
    (adapters to other wire formats read it back through `output_tokens_requested`)."""
    if surface == "anthropic":
        field = "max_tokens"
    elif surface == "responses" or body.get("max_output_tokens") is not None:
        field = "max_output_tokens"  # the Responses API's name
    elif body.get("max_tokens") is not None and body.get("max_completion_tokens") is None:
        field = "max_tokens"
    else:
        field = "max_completion_tokens"
    others = [
        name
        for name in ("max_completion_tokens", "max_tokens", "max_output_tokens")
        if name != field and name in body
    ]
    if body.get(field) == limit and not others:
        return body
    out = {**body, field: limit}
    for name in others:
        del out[name]
    return out


def completion_tokens_upper(body: dict, *, limit: int) -> int:
    """`limit` per choice, times `n`."""
    n = body.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n > 1:
        return limit * n
    return limit


# --- the input bound -------------------------------------------------------------------------


def _text_upper(text: str) -> int:
    if not text:
        return 0
    if text.isascii():
        return (len(text) + 1) // 2 + 1
    return (len(text.encode("utf-8")) + 1) // 2 + 1


def _b64_payload(value) -> str:
    """The base64 data of a data URL or a bare base64 string ('' when it is a reference)."""
    if not isinstance(value, str):
        return ""
    if value.startswith("data:"):
        comma = value.find(",")
        return value[comma + 1 :] if comma >= 0 else ""
    return value


def _document_upper(data: str) -> int:
    return min(len(data) * DOCUMENT_TOKENS_PER_B64_CHAR + IMAGE_TOKENS_UPPER, DOCUMENT_TOKENS_CAP)


def _block_upper(block: dict, kind: str) -> int | None:
    """The bound of a media block, or None when `block` is not one."""
    if kind in ("image_url", "image", "input_image"):
        return IMAGE_TOKENS_UPPER
    if kind == "input_audio":
        audio = block.get("input_audio")
        data = audio.get("data") if isinstance(audio, dict) else block.get("data")
        return len(_b64_payload(data)) // AUDIO_B64_CHARS_PER_TOKEN + 64
    if kind == "document":
        source = block.get("source")
        if not isinstance(source, dict):
            return DOCUMENT_URL_TOKENS
        kind_of_source = source.get("type")
        if kind_of_source == "base64":
            return _document_upper(_b64_payload(source.get("data")))
        if kind_of_source == "text":
            return _text_upper(str(source.get("data") or "")) + PER_MESSAGE_OVERHEAD
        if kind_of_source == "content":
            return _walk(source.get("content")) + PER_MESSAGE_OVERHEAD
        return DOCUMENT_URL_TOKENS
    if kind in ("file", "input_file"):
        file = block.get("file") if isinstance(block.get("file"), dict) else block
        data = _b64_payload(file.get("file_data"))
        return _document_upper(data) if data else DOCUMENT_URL_TOKENS
    return None


def _walk(value) -> int:
    if isinstance(value, str):
        return _text_upper(value)
    if isinstance(value, list):
        if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return len(value)  # token ids: one token each
        return sum(_walk(item) for item in value)
    if isinstance(value, dict):
        kind = value.get("type")
        if isinstance(kind, str):
            media = _block_upper(value, kind)
            if media is not None:
                return media
        total = 0
        for key, item in value.items():
            if key not in _SKIP_KEYS:
                total += _walk(item)
        return total
    if isinstance(value, int) and not isinstance(value, bool):
        return 1
    return 0


def prompt_tokens_upper(body: dict) -> int:
    """An upper bound of the input tokens of a chat, messages, responses or embeddings body."""
    total = REQUEST_OVERHEAD
    for name in _PROMPT_FIELDS:
        if name in body:
            total += _walk(body[name])
    messages = body.get("messages")
    if isinstance(messages, list):
        total += len(messages) * PER_MESSAGE_OVERHEAD
    for name in _JSON_FIELDS:
        value = body.get(name)
        if value:
            total += _text_upper(orjson.dumps(value).decode())
    if body.get("tools") or body.get("functions"):
        total += TOOLS_OVERHEAD
    return total
