"""OpenAI Responses API <-> the canonical chat-completions shape (issue 13).

The Responses surface translates once, into the chat shape every provider adapter already
serves, and back: `request_to_chat` (request), `response_from_chat` (one answer) and
`ResponseEventStream` (chat chunks -> typed Responses events). An `openai` upstream flagged
`responses: true` gets the original request instead (`NATIVE_KEY` in the canonical body,
read by `routing.providers.openai`), and its answers come back through `native_to_chat` /
`native_event_to_chunk` so the engine still sees chat shapes for usage and fallback.

What a translated upstream cannot take (hosted tools, `include`, reasoning items) is left
out and named by `dropped_names`; malformed input is a 400 (`bad_request`), never dropped.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from routing.errors import GatewayError, bad_request

# The canonical chat body carries the native Responses request under this key; adapters
# that do not serve /v1/responses natively never send it.
NATIVE_KEY = "_responses"
# A native answer rides along the chat shape under this key (non-streamed) or `_event`.
NATIVE_RESPONSE_KEY = "_response"
NATIVE_EVENT_KEY = "_event"

ROLES = ("user", "assistant", "system", "developer")
# Item types a client may send back in `input`. Those the chat shape has no place for are
# dropped on translated routes (named in x-tokenforge-dropped); anything else is a 400.
HOSTED_ITEM_TYPES = frozenset(
    {
        "web_search_call",
        "file_search_call",
        "code_interpreter_call",
        "image_generation_call",
        "computer_call",
        "computer_call_output",
        "local_shell_call",
        "local_shell_call_output",
        "shell_call",
        "shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
        "mcp_call",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "custom_tool_call",
        "custom_tool_call_output",
        "tool_search_call",
        "tool_search_output",
        "compaction",
        "item_reference",
    }
)
ITEM_TYPES = frozenset({"message", "function_call", "function_call_output", "reasoning"})
NAMESPACE_SEPARATOR = "__"
EFFORTS = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high", "xhigh": "high"}
TEXT_PARTS = ("input_text", "output_text", "text", "refusal", "summary_text")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


# --- validation and normalisation -------------------------------------------------------------


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def request_validate(body: dict) -> None:
    """The Responses request's shape, checked before any money is held."""
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise bad_request("'model' must be a non-empty string.", param="model", code="invalid_type")
    if "input" not in body and not body.get("previous_response_id"):
        raise bad_request("'input' is required.", param="input", code="missing_required_parameter")
    if "stream" in body and not isinstance(body["stream"], bool | None):
        raise bad_request("'stream' must be a boolean.", param="stream", code="invalid_type")
    if "store" in body and not isinstance(body["store"], bool | None):
        raise bad_request("'store' must be a boolean.", param="store", code="invalid_type")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise bad_request(
            "'instructions' must be a string.", param="instructions", code="invalid_type"
        )
    limit = body.get("max_output_tokens")
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, int) or not 16 <= limit <= 1_000_000
    ):
        raise bad_request(
            "'max_output_tokens' must be an integer between 16 and 1000000.",
            param="max_output_tokens",
            code="invalid_value",
        )
    for name in ("temperature", "top_p"):
        if body.get(name) is not None and not _is_number(body[name]):
            raise bad_request(f"'{name}' must be a number.", param=name, code="invalid_type")
    previous = body.get("previous_response_id")
    if previous is not None and (not isinstance(previous, str) or "\x00" in previous):
        raise bad_request(
            "'previous_response_id' must be a string.",
            param="previous_response_id",
            code="invalid_type",
        )
    for name in ("metadata", "reasoning", "text", "client_metadata"):
        if body.get(name) is not None and not isinstance(body[name], dict):
            raise bad_request(f"'{name}' must be an object.", param=name, code="invalid_type")
    fmt = (body.get("text") or {}).get("format")
    if fmt is not None:
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind not in ("text", "json_object", "json_schema"):
            raise bad_request(
                "'text.format.type' must be text, json_object or json_schema.",
                param="text.format",
                code="invalid_value",
            )
        if kind == "json_schema" and not (
            isinstance(fmt.get("name"), str) and isinstance(fmt.get("schema"), dict)
        ):
            raise bad_request(
                "'text.format' of type json_schema needs a 'name' and a 'schema' object.",
                param="text.format",
                code="invalid_value",
            )
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None and effort not in (*EFFORTS, "none"):
        raise bad_request(
            "'reasoning.effort' must be none, minimal, low, medium, high or xhigh.",
            param="reasoning.effort",
            code="invalid_value",
        )
    include = body.get("include")
    if include is not None and (
        not isinstance(include, list) or not all(isinstance(i, str) for i in include)
    ):
        raise bad_request(
            "'include' must be an array of strings.", param="include", code="invalid_type"
        )
    tools_validate(body.get("tools"))
    if "input" in body:
        input_items(body["input"])


def tools_validate(tools) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise bad_request("'tools' must be an array.", param="tools", code="invalid_type")
    for i, tool in enumerate(tools):
        param = f"tools[{i}]"
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise bad_request(
                f"'{param}' must be an object with a string 'type'.",
                param=param,
                code="invalid_type",
            )
        if tool["type"] == "function":
            _function_validate(tool, param)
        elif tool["type"] == "namespace":
            if not isinstance(tool.get("name"), str) or not tool["name"]:
                raise bad_request(
                    f"'{param}.name' is required.", param=f"{param}.name", code="invalid_value"
                )
            inner = tool.get("tools")
            if not isinstance(inner, list):
                raise bad_request(
                    f"'{param}.tools' must be an array.",
                    param=f"{param}.tools",
                    code="invalid_type",
                )
            for j, fn in enumerate(inner):
                where = f"{param}.tools[{j}]"
                if not isinstance(fn, dict):
                    raise bad_request(f"'{where}' must be an object.", param=where)
                if fn.get("type", "function") == "function":
                    _function_validate(fn, where)


def _function_validate(tool: dict, param: str) -> None:
    name = tool.get("name")
    if not isinstance(name, str) or not name or len(name) > 128:
        raise bad_request(
            f"'{param}.name' must be a non-empty string.",
            param=f"{param}.name",
            code="invalid_value",
        )
    params = tool.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise bad_request(
            f"'{param}.parameters' must be a JSON schema object.",
            param=f"{param}.parameters",
            code="invalid_type",
        )


def input_items(value) -> list[dict]:
    """`input` as a list of typed items (a string is one user message). 400 on anything
    that is not a Responses input item."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list):
        raise bad_request(
            "'input' must be a string or an array of items.", param="input", code="invalid_type"
        )
    items = []
    for i, item in enumerate(value):
        param = f"input[{i}]"
        if not isinstance(item, dict):
            raise bad_request(f"'{param}' must be an object.", param=param, code="invalid_type")
        kind = item.get("type")
        if kind is None and "role" in item:
            item = {"type": "message", **item}
            kind = "message"
        if not isinstance(kind, str) or (kind not in ITEM_TYPES and kind not in HOSTED_ITEM_TYPES):
            raise bad_request(
                f"Invalid value for '{param}.type': {kind!r} is not a known input item type.",
                param=f"{param}.type",
                code="invalid_value",
            )
        if kind == "message":
            if item.get("role") not in ROLES:
                raise bad_request(
                    f"'{param}.role' must be one of {', '.join(ROLES)}.",
                    param=f"{param}.role",
                    code="invalid_value",
                )
            content = item.get("content")
            if not isinstance(content, str | list) or (
                isinstance(content, list)
                and not all(isinstance(p, dict) and isinstance(p.get("type"), str) for p in content)
            ):
                raise bad_request(
                    f"'{param}.content' must be a string or an array of typed parts.",
                    param=f"{param}.content",
                    code="invalid_type",
                )
        elif kind == "function_call":
            if not isinstance(item.get("call_id"), str) or not isinstance(item.get("name"), str):
                raise bad_request(f"'{param}' needs a string 'call_id' and 'name'.", param=param)
        elif kind == "function_call_output":
            if not isinstance(item.get("call_id"), str):
                raise bad_request(f"'{param}.call_id' must be a string.", param=f"{param}.call_id")
        items.append(item)
    return items


def items_with_ids(items: list[dict]) -> list[dict]:
    """Stored input items carry ids and typed content parts, as OpenAI lists them."""
    prefixes = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}
    out = []
    for item in items:
        if not item.get("id"):
            item = {"id": new_id(prefixes.get(item.get("type"), "item")), **item}
        if item.get("type") == "message" and isinstance(item.get("content"), str):
            kind = "output_text" if item.get("role") == "assistant" else "input_text"
            item = {**item, "content": [{"type": kind, "text": item["content"]}]}
        out.append(item)
    return out


# --- request -> canonical chat ----------------------------------------------------------------


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for part in content if isinstance(content, list) else ():
        if isinstance(part, dict) and part.get("type") in TEXT_PARTS:
            parts.append(str(part.get("text") or part.get("refusal") or ""))
    return "".join(parts)


def _user_parts(content, param: str) -> str | list[dict]:
    if isinstance(content, str):
        return content
    parts: list[dict] = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind in ("input_text", "text", "output_text"):
            parts.append({"type": "text", "text": str(part.get("text") or "")})
        elif kind == "input_image":
            url = part.get("image_url") or part.get("file_id")
            if not isinstance(url, str) or not url:
                raise bad_request(
                    f"'{param}.content[{j}]' needs an 'image_url'.",
                    param=f"{param}.content[{j}]",
                )
            image = {"url": url}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "input_file":
            file = {k: part[k] for k in ("file_data", "file_id", "filename") if part.get(k)}
            if part.get("file_url") and not file:
                raise bad_request(
                    "input_file by file_url can only go to upstreams that serve /v1/responses.",
                    param=f"{param}.content[{j}]",
                )
            parts.append({"type": "file", "file": file})
        else:
            raise bad_request(
                f"Invalid value for '{param}.content[{j}].type': {kind!r}.",
                param=f"{param}.content[{j}].type",
                code="invalid_value",
            )
    return parts


def _tool_name(item: dict) -> str:
    namespace = item.get("namespace")
    name = str(item.get("name") or "")
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}" if namespace else name


def _output_text(output) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return _text_of(output)
    return orjson.dumps(output).decode()


def messages_from_items(items: list[dict], *, instructions: str | None) -> tuple[list[dict], set]:
    """Chat messages from Responses items; the set names item types left out."""
    messages: list[dict] = []
    dropped: set[str] = set()
    if instructions:
        messages.append({"role": "system", "content": instructions})
    for i, item in enumerate(items):
        kind = item.get("type")
        param = f"input[{i}]"
        if kind == "message":
            role = item["role"]
            content = item.get("content")
            if role in ("system", "developer"):
                messages.append({"role": "system", "content": _text_of(content)})
            elif role == "user":
                messages.append({"role": "user", "content": _user_parts(content, param)})
            else:
                text = _text_of(content)
                last = messages[-1] if messages else None
                if last and last["role"] == "assistant" and not last.get("content"):
                    last["content"] = text
                else:
                    messages.append({"role": "assistant", "content": text})
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {
                    "name": _tool_name(item),
                    "arguments": str(item.get("arguments") or ""),
                },
            }
            last = messages[-1] if messages else None
            if last and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": item["call_id"],
                    "content": _output_text(item.get("output")),
                }
            )
        else:  # reasoning and hosted-tool items: the chat shape has no place for them
            dropped.add(f"input.{kind}")
    for message in messages:
        if message["role"] == "assistant" and message.get("content") is None:
            message["content"] = ""
    return messages, dropped


def _function_to_chat(tool: dict, name: str) -> dict:
    fn: dict[str, Any] = {
        "name": name,
        "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
    }
    if tool.get("description"):
        fn["description"] = tool["description"]
    if isinstance(tool.get("strict"), bool):
        fn["strict"] = tool["strict"]
    return {"type": "function", "function": fn}


def tools_to_chat(tools: list | None) -> tuple[list[dict], list[str]]:
    """Function tools (namespace members as `namespace__name`); hosted ones are dropped."""
    out: list[dict] = []
    dropped: list[str] = []
    for tool in tools or ():
        kind = tool["type"]
        if kind == "function":
            out.append(_function_to_chat(tool, tool["name"]))
        elif kind == "namespace":
            for fn in tool.get("tools") or ():
                if fn.get("type", "function") == "function":
                    name = f"{tool['name']}{NAMESPACE_SEPARATOR}{fn['name']}"
                    out.append(_function_to_chat(fn, name))
                else:
                    dropped.append(f"{tool['name']}.{fn.get('name') or fn.get('type')}")
        else:
            dropped.append(str(kind))
    return out, dropped


def _tool_choice(choice):
    if choice is None or choice in ("auto", "none", "required"):
        return choice, None
    if isinstance(choice, dict):
        if choice.get("type") == "function" and isinstance(choice.get("name"), str):
            return {"type": "function", "function": {"name": choice["name"]}}, None
        if choice.get("type") == "allowed_tools":
            return choice.get("mode") or "auto", "tool_choice.allowed_tools"
        return "auto", f"tool_choice.{choice.get('type')}"
    raise bad_request(
        "'tool_choice' must be auto, none, required or a tool object.",
        param="tool_choice",
        code="invalid_value",
    )


def request_to_chat(body: dict, *, items: list[dict], native: dict) -> tuple[dict, list[str]]:
    """The canonical chat body for a Responses request whose full input (replayed history
    included) is `items`, and the names of what translated routes leave out. `native` is
    what an upstream serving /v1/responses gets instead."""
    messages, dropped_items = messages_from_items(items, instructions=body.get("instructions"))
    if not messages:
        raise bad_request("'input' must not be empty.", param="input", code="invalid_value")
    chat: dict[str, Any] = {"model": body["model"], "messages": messages}
    tools, dropped = tools_to_chat(body.get("tools"))
    dropped += sorted(dropped_items)
    if tools:
        chat["tools"] = tools
        if isinstance(body.get("parallel_tool_calls"), bool):
            chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    choice, choice_dropped = _tool_choice(body.get("tool_choice"))
    if choice_dropped:
        dropped.append(choice_dropped)
    if choice is not None and (tools or choice == "none"):
        chat["tool_choice"] = choice
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    for name in ("temperature", "top_p", "user", "prompt_cache_key"):
        if body.get(name) is not None:
            chat[name] = body[name]
    effort = (body.get("reasoning") or {}).get("effort")
    if effort in EFFORTS:
        chat["reasoning_effort"] = EFFORTS[effort]
    fmt = (body.get("text") or {}).get("format") or {}
    if fmt.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
    elif fmt.get("type") == "json_schema":
        schema = {"name": fmt["name"], "schema": fmt["schema"]}
        for key in ("strict", "description"):
            if fmt.get(key) is not None:
                schema[key] = fmt[key]
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
    if body.get("include"):
        dropped.append("include")
    if body.get("background"):
        dropped.append("background")
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    chat[NATIVE_KEY] = native
    return chat, dropped


def native_request(body: dict, *, history: list[dict], items: list[dict]) -> dict:
    """The request an upstream serving /v1/responses gets: as sent, with the stored history
    replayed into `input` instead of a `previous_response_id` it never saw."""
    native = {k: v for k, v in body.items() if k != "previous_response_id"}
    if history:
        native["input"] = [*history, *items]
    return native


# --- canonical chat answer -> Response ------------------------------------------------------


def split_tool_name(name: str, namespaces: set[str]) -> tuple[str | None, str]:
    head, sep, tail = name.partition(NAMESPACE_SEPARATOR)
    if sep and head in namespaces:
        return head, tail
    return None, name


def namespaces_of(body: dict) -> set[str]:
    return {
        t["name"]
        for t in body.get("tools") or ()
        if isinstance(t, dict) and t.get("type") == "namespace"
    }


def usage_object(usage: dict | None) -> dict | None:
    """Chat usage -> Responses usage."""
    if not isinstance(usage, dict):
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    reasoning = int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion,
    }


def response_skeleton(
    body: dict, *, response_id: str, created_at: int, model: str, status: str
) -> dict:
    """A Response object with the request's settings echoed, as OpenAI returns it."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "model": model,
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "store": body.get("store", True) is not False,
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation") or "disabled",
        "usage": None,
        "user": body.get("user"),
    }


def _message_item(text: str, *, item_id: str | None = None, status: str = "completed") -> dict:
    return {
        "id": item_id or new_id("msg"),
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def _call_item(call: dict, namespaces: set[str], *, item_id: str | None = None) -> dict:
    fn = call.get("function") or {}
    namespace, name = split_tool_name(str(fn.get("name") or ""), namespaces)
    item = {
        "id": item_id or new_id("fc"),
        "type": "function_call",
        "status": "completed",
        "call_id": str(call.get("id") or new_id("call")),
        "name": name,
        "arguments": str(fn.get("arguments") or ""),
    }
    if namespace:
        item["namespace"] = namespace
    return item


def finish_status(finish_reason: str | None) -> tuple[str, dict | None]:
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def response_from_chat(
    chat: dict, *, body: dict, response_id: str, created_at: int, model: str, usage: dict
) -> dict:
    """One chat.completion -> a Response. A native answer (`_response`) is used as it is,
    under our id and the public model name."""
    native = chat.get(NATIVE_RESPONSE_KEY)
    if isinstance(native, dict):
        return {
            **native,
            "id": response_id,
            "model": model,
            "created_at": created_at,
            "previous_response_id": body.get("previous_response_id"),
            "store": body.get("store", True) is not False,
        }
    response = response_skeleton(
        body, response_id=response_id, created_at=created_at, model=model, status="completed"
    )
    choice = (chat.get("choices") or [{}])[0] or {}
    message = choice.get("message") or {}
    namespaces = namespaces_of(body)
    output = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        output.append(
            {
                "id": new_id("rs"),
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": reasoning}],
            }
        )
    text = message.get("content")
    if isinstance(text, list):
        text = _text_of(text)
    if text:
        output.append(_message_item(text))
    for call in message.get("tool_calls") or ():
        if isinstance(call, dict):
            output.append(_call_item(call, namespaces))
    if message.get("refusal"):
        output.append(
            {
                **_message_item(""),
                "content": [{"type": "refusal", "refusal": str(message["refusal"])}],
            }
        )
    status, details = finish_status(choice.get("finish_reason"))
    response.update(
        output=output, status=status, incomplete_details=details, usage=usage_object(usage)
    )
    return response


def output_text(response: dict) -> str:
    return "".join(
        part.get("text") or ""
        for item in response.get("output") or ()
        if item.get("type") == "message"
        for part in item.get("content") or ()
        if part.get("type") == "output_text"
    )


# --- canonical chat stream -> Responses events ----------------------------------------------


class ResponseEventStream:
    """Turns the engine's chat chunks into typed Responses events, in OpenAI's order, each
    with a `sequence_number`; `response` is the final object once the stream has ended.
    Native events (an upstream serving /v1/responses) pass through, renumbered."""

    def __init__(self, *, body: dict, response_id: str, created_at: int, model: str):
        self.body = body
        self.response_id = response_id
        self.model = model
        self.response = response_skeleton(
            body, response_id=response_id, created_at=created_at, model=model, status="in_progress"
        )
        self.namespaces = namespaces_of(body)
        self._seq = 0
        self._output: list[dict] = []
        self._message: dict | None = None  # the open message item
        self._reasoning: dict | None = None  # the open reasoning item (relays that send it)
        self._thought: list[str] = []
        self._text: list[str] = []
        self._calls: dict[int, dict] = {}  # chat tool_call index -> open function_call item
        self._finish: str | None = None
        self._usage: dict | None = None
        self._error: dict | None = None
        self._native = False
        self.ended = False

    def _event(self, kind: str, **fields) -> dict:
        event = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event

    def _snapshot(self) -> dict:
        return {**self.response, "output": list(self._output)}

    def start(self) -> list[dict]:
        return [
            self._event("response.created", response=self._snapshot()),
            self._event("response.in_progress", response=self._snapshot()),
        ]

    # chat chunk -> events
    def feed(self, chunk: dict) -> list[dict]:
        native = chunk.get(NATIVE_EVENT_KEY)
        if isinstance(native, dict):
            return self._feed_native(native)
        if "error" in chunk and not chunk.get("choices"):
            err = chunk.get("error") or {}
            self._error = {
                "code": "server_error",
                "message": str(err.get("message") if isinstance(err, dict) else err),
            }
            return []
        events: list[dict] = []
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            thought = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(thought, str) and thought:
                events += self._reasoning_delta(thought)
            text = delta.get("content")
            if isinstance(text, str) and text:
                events += self._close_reasoning()
                events += self._text_delta(text)
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    events += self._call_delta(call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return events

    def _text_delta(self, text: str) -> list[dict]:
        events = []
        if self._message is None:
            self._message = {
                "id": new_id("msg"),
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            index = len(self._output)
            self._output.append(self._message)
            self._message["_index"] = index
            events.append(
                self._event(
                    "response.output_item.added",
                    output_index=index,
                    item=self._public(self._message),
                )
            )
            events.append(
                self._event(
                    "response.content_part.added",
                    item_id=self._message["id"],
                    output_index=index,
                    content_index=0,
                    part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
                )
            )
        self._text.append(text)
        events.append(
            self._event(
                "response.output_text.delta",
                item_id=self._message["id"],
                output_index=self._message["_index"],
                content_index=0,
                delta=text,
                logprobs=[],
            )
        )
        return events

    def _reasoning_delta(self, text: str) -> list[dict]:
        events = []
        if self._reasoning is None:
            index = len(self._output)
            self._reasoning = {
                "id": new_id("rs"),
                "type": "reasoning",
                "summary": [],
                "_index": index,
            }
            self._output.append(self._reasoning)
            events.append(
                self._event(
                    "response.output_item.added",
                    output_index=index,
                    item=self._public(self._reasoning),
                )
            )
            events.append(
                self._event(
                    "response.reasoning_summary_part.added",
                    item_id=self._reasoning["id"],
                    output_index=index,
                    summary_index=0,
                    part={"type": "summary_text", "text": ""},
                )
            )
        self._thought.append(text)
        events.append(
            self._event(
                "response.reasoning_summary_text.delta",
                item_id=self._reasoning["id"],
                output_index=self._reasoning["_index"],
                summary_index=0,
                delta=text,
            )
        )
        return events

    def _close_reasoning(self) -> list[dict]:
        if self._reasoning is None:
            return []
        item, index, text = self._reasoning, self._reasoning["_index"], "".join(self._thought)
        part = {"type": "summary_text", "text": text}
        item["summary"] = [part]
        self._reasoning = None
        common = {"item_id": item["id"], "output_index": index, "summary_index": 0}
        return [
            self._event("response.reasoning_summary_text.done", **common, text=text),
            self._event("response.reasoning_summary_part.done", **common, part=part),
            self._event("response.output_item.done", output_index=index, item=self._public(item)),
        ]

    def _close_message(self) -> list[dict]:
        if self._message is None:
            return []
        item, index, text = self._message, self._message["_index"], "".join(self._text)
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        item.update(status="completed", content=[part])
        self._message = None
        common = {"item_id": item["id"], "output_index": index, "content_index": 0}
        return [
            self._event("response.output_text.done", **common, text=text, logprobs=[]),
            self._event("response.content_part.done", **common, part=part),
            self._event("response.output_item.done", output_index=index, item=self._public(item)),
        ]

    def _call_delta(self, call: dict) -> list[dict]:
        events = []
        index = call.get("index", 0)
        fn = call.get("function") or {}
        item = self._calls.get(index)
        if item is None:
            events += self._close_reasoning()
            events += self._close_message()
            namespace, name = split_tool_name(str(fn.get("name") or ""), self.namespaces)
            item = {
                "id": new_id("fc"),
                "type": "function_call",
                "status": "in_progress",
                "call_id": str(call.get("id") or new_id("call")),
                "name": name,
                "arguments": "",
            }
            if namespace:
                item["namespace"] = namespace
            item["_index"] = len(self._output)
            self._output.append(item)
            self._calls[index] = item
            events.append(
                self._event(
                    "response.output_item.added",
                    output_index=item["_index"],
                    item=self._public(item),
                )
            )
        arguments = fn.get("arguments")
        if isinstance(arguments, str) and arguments:
            item["arguments"] += arguments
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=item["_index"],
                    delta=arguments,
                )
            )
        return events

    @staticmethod
    def _public(item: dict) -> dict:
        return {k: v for k, v in item.items() if not k.startswith("_")}

    def finish(self) -> list[dict]:
        """The closing events: open items done, then completed / incomplete / failed."""
        if self.ended:
            return []
        self.ended = True
        if self._native:
            if self.response.get("status") in ("in_progress", "queued", None):
                # The native stream ended without its final event (broken upstream).
                self.response = {
                    **self.response,
                    "status": "failed",
                    "error": self._error
                    or {"code": "server_error", "message": "stream ended early"},
                }
                return [self._event("response.failed", response=self.response)]
            return []
        events = self._close_reasoning() + self._close_message()
        for item in self._calls.values():
            item["status"] = "completed"
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=item["_index"],
                    name=item["name"],
                    arguments=item["arguments"],
                )
            )
            events.append(
                self._event(
                    "response.output_item.done",
                    output_index=item["_index"],
                    item=self._public(item),
                )
            )
        status, details = finish_status(self._finish)
        if self._error is not None:
            status, details = "failed", None
        self.response = {
            **self.response,
            "status": status,
            "incomplete_details": details,
            "error": self._error,
            "output": [self._public(i) for i in self._output],
            "usage": usage_object(self._usage),
        }
        kind = {"completed": "response.completed", "incomplete": "response.incomplete"}.get(
            status, "response.failed"
        )
        events.append(self._event(kind, response=self.response))
        return events

    def _feed_native(self, event: dict) -> list[dict]:
        self._native = True
        kind = str(event.get("type") or "")
        if kind in ("response.created", "response.in_progress"):
            return []  # already sent by start(), under our id
        event = {**event, "sequence_number": self._seq}
        self._seq += 1
        if isinstance(event.get("response"), dict):
            response = {
                **event["response"],
                "id": self.response_id,
                "model": self.model,
                "created_at": self.response["created_at"],
                "previous_response_id": self.body.get("previous_response_id"),
                "store": self.body.get("store", True) is not False,
            }
            event["response"] = response
            if kind in ("response.completed", "response.incomplete", "response.failed"):
                self.response = response
        if kind == "error":
            self._error = {
                "code": str(event.get("code") or "server_error"),
                "message": str(event.get("message") or ""),
            }
        return [event]


def error_event(stream: ResponseEventStream, err: GatewayError) -> dict:
    return stream._event("error", code=err.code, message=err.message, param=err.param)


# --- native Responses answers -> canonical chat (for the engine) ------------------------------


def native_usage_to_chat(usage: dict | None) -> dict | None:
    if not isinstance(usage, dict):
        return None
    return {
        "prompt_tokens": int(usage.get("input_tokens") or 0),
        "completion_tokens": int(usage.get("output_tokens") or 0),
        "total_tokens": int(usage.get("total_tokens") or 0),
        "prompt_tokens_details": {
            "cached_tokens": int(
                (usage.get("input_tokens_details") or {}).get("cached_tokens") or 0
            )
        },
        "completion_tokens_details": {
            "reasoning_tokens": int(
                (usage.get("output_tokens_details") or {}).get("reasoning_tokens") or 0
            )
        },
    }


def native_to_chat(response: dict) -> dict:
    """A Response from an upstream -> a chat.completion carrying the Response itself."""
    text, calls = [], []
    for item in response.get("output") or ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            text.append(_text_of(item.get("content")))
        elif item.get("type") == "function_call":
            calls.append(
                {
                    "id": item.get("call_id"),
                    "type": "function",
                    "function": {
                        "name": _tool_name(item),
                        "arguments": item.get("arguments") or "",
                    },
                }
            )
    message: dict = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        message["tool_calls"] = calls
    finish = "tool_calls" if calls else "stop"
    if response.get("status") == "incomplete":
        finish = "length"
    chat = {
        "id": response.get("id") or new_id("chatcmpl"),
        "object": "chat.completion",
        "created": int(response.get("created_at") or time.time()),
        "model": response.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        NATIVE_RESPONSE_KEY: response,
    }
    usage = native_usage_to_chat(response.get("usage"))
    if usage is not None:
        chat["usage"] = usage
    return chat


def native_event_to_chunk(event: dict) -> dict:
    """A native stream event -> a chat chunk the engine can read (text for estimates, the
    finish and usage), carrying the event itself for the Responses view."""
    kind = event.get("type")
    choice: dict = {"index": 0, "delta": {}, "finish_reason": None}
    chunk: dict = {"object": "chat.completion.chunk", "choices": [choice], NATIVE_EVENT_KEY: event}
    if kind == "response.output_text.delta":
        choice["delta"] = {"content": str(event.get("delta") or "")}
    elif kind == "response.function_call_arguments.delta":
        choice["delta"] = {
            "tool_calls": [{"index": 0, "function": {"arguments": str(event.get("delta") or "")}}]
        }
    elif kind in ("response.completed", "response.incomplete", "response.failed"):
        response = event.get("response") or {}
        choice["finish_reason"] = "length" if kind == "response.incomplete" else "stop"
        usage = native_usage_to_chat(response.get("usage"))
        if usage is not None:
            chunk["usage"] = usage
    else:
        chunk["choices"] = []
    return chunk


# --- /v1/responses/compact ---------------------------------------------------------------------

COMPACT_PROMPT = (
    "Summarize the conversation above for the model that will continue it: the task, what "
    "has been done (commands, files, tool results that matter), decisions taken and what "
    "remains. Be complete but concise; answer with the summary only."
)
SUMMARY_PREFIX = "Summary of the conversation so far (compacted by the gateway):\n\n"


def compact_request_to_chat(body: dict, *, items: list[dict]) -> dict:
    """A summarisation request over the conversation, on any upstream. Tools stay declared
    (some providers refuse tool calls in history without them) but may not be called."""
    messages, _ = messages_from_items(items, instructions=body.get("instructions"))
    messages.append({"role": "user", "content": COMPACT_PROMPT})
    tools, _ = tools_to_chat(body.get("tools"))
    declared = {t["function"]["name"] for t in tools}
    for item in items:
        name = _tool_name(item) if item.get("type") == "function_call" else None
        if name and name not in declared:
            declared.add(name)
            tools.append(_function_to_chat({}, name))
    chat: dict[str, Any] = {"model": body["model"], "messages": messages}
    if tools:
        chat["tools"] = tools
        chat["tool_choice"] = "none"
    return chat


def compacted_output(items: list[dict], summary: str) -> list[dict]:
    """What replaces the client's history: its own user messages verbatim, then the summary
    (OpenAI keeps user messages too; its opaque compaction item has no portable form)."""
    kept = [
        item
        for item in items_with_ids(items)
        if item.get("type") == "message" and item.get("role") == "user"
    ]
    summary_item = {
        "id": new_id("msg"),
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": SUMMARY_PREFIX + summary}],
    }
    return [*kept, summary_item]
