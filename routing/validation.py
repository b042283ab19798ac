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
    depth_check(data, limit=settings.PROXY_MAX_JSON_DEPTH)
    return data


def depth_check(data, *, limit: int) -> None:
    """400 when containers nest deeper than `limit`: deep JSON crashed the encoder, the
    pricing walk and the token estimator (RecursionError) after the hold was placed.
    Iterative, so the check itself cannot recurse; strings and numbers cost nothing."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            raise bad_request(
                f"Request body nests deeper than {limit} levels.", code="nesting_too_deep"
            )
        children = value.values() if isinstance(value, dict) else value
        for child in children:
            if isinstance(child, dict | list) and child:
                stack.append((child, depth + 1))


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
    chat_shapes_validate(body)


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


# --- block shapes: what the translators and estimators may rely on -------------------------


def _shape_error(param: str, what: str):
    return bad_request(f"'{param}' must be {what}.", param=param, code="invalid_type")


def _optional(value, types, param: str, what: str) -> None:
    if value is not None and not isinstance(value, types):
        raise _shape_error(param, what)


def _function_tools(tools, param: str = "tools") -> None:
    if not isinstance(tools, list):
        return
    for i, tool in enumerate(tools):
        where = f"{param}[{i}]"
        if not isinstance(tool, dict):
            raise _shape_error(where, "an object")
        fn = tool.get("function")
        _optional(fn, dict, f"{where}.function", "an object")
        if isinstance(fn, dict):
            _optional(fn.get("name"), str, f"{where}.function.name", "a string")
            _optional(fn.get("parameters"), dict, f"{where}.function.parameters", "an object")
        _optional(tool.get("input_schema"), dict, f"{where}.input_schema", "an object")
        _optional(tool.get("name"), str, f"{where}.name", "a string")


def chat_shapes_validate(body: dict) -> None:
    """Inner shapes of a chat request (parts, tool calls, tools, stop): 400, never a crash."""
    for i, message in enumerate(body.get("messages") or ()):
        where = f"messages[{i}]"
        content = message.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                pwhere = f"{where}.content[{j}]"
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise _shape_error(pwhere, "an object with a string 'type'")
                _optional(part.get("text"), str, f"{pwhere}.text", "a string")
                image = part.get("image_url")
                if image is not None and not (
                    isinstance(image, str)
                    or (isinstance(image, dict) and isinstance(image.get("url"), str))
                ):
                    raise _shape_error(f"{pwhere}.image_url", "an object with a string 'url'")
                for name in ("input_audio", "file"):
                    _optional(part.get(name), dict, f"{pwhere}.{name}", "an object")
        calls = message.get("tool_calls")
        _optional(calls, list, f"{where}.tool_calls", "an array")
        for j, call in enumerate(calls or ()):
            cwhere = f"{where}.tool_calls[{j}]"
            if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
                raise _shape_error(cwhere, "an object with a 'function' object")
            _optional(call["function"].get("name"), str, f"{cwhere}.function.name", "a string")
            _optional(
                call["function"].get("arguments"),
                str | dict,
                f"{cwhere}.function.arguments",
                "a string",
            )
        for name in ("name", "tool_call_id"):
            _optional(message.get(name), str, f"{where}.{name}", "a string")
    _function_tools(body.get("tools"))
    _optional(body.get("functions"), list, "functions", "an array")
    _function_tools(body.get("functions"), "functions")
    stop = body.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(x, str) for x in stop))
    ):
        raise _shape_error("stop", "a string or an array of strings")
    _optional(body.get("reasoning_effort"), str, "reasoning_effort", "a string")
    _optional(body.get("tool_choice"), str | dict, "tool_choice", "a string or an object")
    _optional(body.get("response_format"), dict, "response_format", "an object")


_SOURCE_BLOCKS = ("image", "document")


def messages_blocks_validate(body: dict) -> None:
    """Inner shapes of a Messages request: an image whose `source` is a string or a
    tool_result whose `content` is a number crashed the translator (500); now 400."""
    for i, message in enumerate(body.get("messages") or ()):
        content = message.get("content")
        if isinstance(content, list):
            _blocks(content, f"messages.{i}.content")
    system = body.get("system")
    if isinstance(system, list):
        for j, block in enumerate(system):
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                raise _shape_error(f"system.{j}", "an object with a string 'type'")
            _optional(block.get("text"), str, f"system.{j}.text", "a string")
    _function_tools(body.get("tools"))
    _optional(body.get("tool_choice"), dict, "tool_choice", "an object")
    _optional(body.get("thinking"), dict, "thinking", "an object")
    _optional(body.get("metadata"), dict, "metadata", "an object")


def _blocks(blocks: list, where: str) -> None:
    for j, block in enumerate(blocks):
        bwhere = f"{where}.{j}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _shape_error(bwhere, "an object with a string 'type'")
        kind = block["type"]
        _optional(block.get("text"), str, f"{bwhere}.text", "a string")
        _optional(block.get("thinking"), str, f"{bwhere}.thinking", "a string")
        if kind in _SOURCE_BLOCKS and not isinstance(block.get("source"), dict):
            raise _shape_error(f"{bwhere}.source", "an object")
        if kind == "tool_use":
            _optional(block.get("input"), dict, f"{bwhere}.input", "an object")
            _optional(block.get("name"), str, f"{bwhere}.name", "a string")
            _optional(block.get("id"), str, f"{bwhere}.id", "a string")
        if kind == "tool_result":
            _optional(block.get("tool_use_id"), str, f"{bwhere}.tool_use_id", "a string")
            inner = block.get("content")
            if inner is not None and not isinstance(inner, str | list):
                raise _shape_error(f"{bwhere}.content", "a string or an array of blocks")
            if isinstance(inner, list):
                _blocks(inner, f"{bwhere}.content")
