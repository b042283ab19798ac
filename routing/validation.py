"""Cheap request-body checks with clear 400s, before any money or upstream is involved."""

from __future__ import annotations

import orjson
from django.conf import settings

from routing.errors import GatewayError, bad_request

MAX_TOKENS_LIMIT = 1_000_000
MAX_N = 16


def body_parse(request) -> dict:
    """The JSON object of a request body; 413 when too large, 400 when not a JSON object."""
    limit = settings.PROXY_MAX_BODY_BYTES
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise GatewayError(
            413, f"Request body is larger than {limit} bytes.", code="request_too_large"
        )
    from django.core.exceptions import RequestDataTooBig

    try:
        raw = request.body
    except RequestDataTooBig as exc:
        raise GatewayError(
            413, f"Request body is larger than {limit} bytes.", code="request_too_large"
        ) from exc
    if len(raw) > limit:
        raise GatewayError(
            413, f"Request body is larger than {limit} bytes.", code="request_too_large"
        )
    if not raw:
        raise bad_request("Request body is empty; send a JSON object.")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"Request body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(data, dict):
        raise bad_request("Request body must be a JSON object.", code="invalid_json")
    return data


def _int_in(body: dict, name: str, low: int, high: int) -> None:
    if name not in body or body[name] is None:
        return
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise bad_request(
            f"'{name}' must be an integer between {low} and {high}.",
            param=name,
            code="invalid_type",
        )


def _model(body: dict) -> None:
    model = body.get("model")
    if "model" not in body:
        raise bad_request("'model' is required.", param="model", code="missing_required_parameter")
    if not isinstance(model, str) or not model.strip():
        raise bad_request("'model' must be a non-empty string.", param="model", code="invalid_type")


def chat_validate(body: dict) -> None:
    _model(body)
    messages = body.get("messages")
    if "messages" not in body:
        raise bad_request(
            "'messages' is required.", param="messages", code="missing_required_parameter"
        )
    if not isinstance(messages, list) or not messages:
        raise bad_request(
            "'messages' must be a non-empty array.", param="messages", code="invalid_type"
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise bad_request(
                f"'messages[{i}]' must be an object with a string 'role'.",
                param=f"messages[{i}]",
                code="invalid_type",
            )
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise bad_request(
                f"'messages[{i}].content' must be a string or an array.",
                param=f"messages[{i}].content",
                code="invalid_type",
            )
    if "stream" in body and not isinstance(body["stream"], bool | None):
        raise bad_request("'stream' must be a boolean.", param="stream", code="invalid_type")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise bad_request(
            "'stream_options' must be an object.", param="stream_options", code="invalid_type"
        )
    _int_in(body, "max_tokens", 1, MAX_TOKENS_LIMIT)
    _int_in(body, "max_completion_tokens", 1, MAX_TOKENS_LIMIT)
    _int_in(body, "n", 1, MAX_N)
    for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise bad_request(f"'{name}' must be a number.", param=name, code="invalid_type")
    if "tools" in body and body["tools"] is not None and not isinstance(body["tools"], list):
        raise bad_request("'tools' must be an array.", param="tools", code="invalid_type")


def embeddings_validate(body: dict) -> None:
    _model(body)
    value = body.get("input")
    if "input" not in body:
        raise bad_request("'input' is required.", param="input", code="missing_required_parameter")
    ok = isinstance(value, str) and value != ""
    if isinstance(value, list) and value:
        ok = (
            all(isinstance(v, str) and v != "" for v in value)
            or all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            or all(
                isinstance(v, list)
                and v
                and all(isinstance(t, int) and not isinstance(t, bool) for t in v)
                for v in value
            )
        )
    if not ok:
        raise bad_request(
            "'input' must be a non-empty string, array of strings, or array of token arrays.",
            param="input",
            code="invalid_type",
        )
