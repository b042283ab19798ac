"""OpenAI chat completions <-> Anthropic Messages, requests, responses and streams.

`request_to_anthropic` / `response_to_openai` / `stream_to_openai` serve the OpenAI surface
from an Anthropic upstream; `request_to_openai` / `response_to_anthropic` /
`stream_to_anthropic` serve `/v1/messages` from an OpenAI-format (or Gemini) upstream.
Anything that cannot be expressed on the other side raises `UnsupportedFeature`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator

from routing.providers.base import StreamState, UnsupportedFeature, Usage

DEFAULT_MAX_TOKENS = 4096

# Anthropic stop_reason -> OpenAI finish_reason, and back.
STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
    "model_context_window_exceeded": "length",
}
FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def _default_max_tokens() -> int:
    """Anthropic requires max_tokens: default to the same bound the gateway holds money for."""
    from django.conf import settings

    return int(getattr(settings, "ROUTING_DEFAULT_MAX_OUTPUT_TOKENS", DEFAULT_MAX_TOKENS))


# --- usage ---------------------------------------------------------------------------------
def usage_from_anthropic(data: dict | None) -> Usage | None:
    """Anthropic usage -> Usage. OpenAI's prompt_tokens = input + cache read + cache creation;
    cache reads are the cached part."""
    if not isinstance(data, dict):
        return None
    try:
        fresh = int(data.get("input_tokens") or 0)
        read = int(data.get("cache_read_input_tokens") or 0)
        created = int(data.get("cache_creation_input_tokens") or 0)
        output = int(data.get("output_tokens") or 0)
    except (TypeError, ValueError):
        return None
    return Usage(prompt_tokens=fresh + read + created, completion_tokens=output, cached_tokens=read)


def usage_to_openai(usage: Usage) -> dict:
    data = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    data["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    return data


def usage_to_anthropic(usage: Usage | None) -> dict:
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    data = {
        "input_tokens": max(usage.prompt_tokens - usage.cached_tokens, 0),
        "output_tokens": usage.completion_tokens,
    }
    if usage.cached_tokens:
        data["cache_read_input_tokens"] = usage.cached_tokens
    return data


# --- helpers -------------------------------------------------------------------------------
def _refuse(message: str, param: str) -> None:
    raise UnsupportedFeature(message, param=param)


def _parse_data_url(url: str) -> tuple[str, str] | None:
    """`data:image/png;base64,AAAA` -> ("image/png", "AAAA"); None for other URLs."""
    if not url.startswith("data:"):
        return None
    header, sep, data = url[5:].partition(",")
    if not sep or ";base64" not in header:
        raise UnsupportedFeature(
            "image data URLs must be base64-encoded", param="messages.content.image_url"
        )
    return header.split(";")[0] or "application/octet-stream", data


def _arguments_to_input(arguments, *, param: str) -> dict:
    if isinstance(arguments, dict):
        return arguments
    try:
        value = json.loads(arguments or "{}")
    except (TypeError, ValueError):
        raise UnsupportedFeature("tool call arguments must be a JSON object", param=param) from None
    if not isinstance(value, dict):
        raise UnsupportedFeature("tool call arguments must be a JSON object", param=param)
    return value


def _text_of_openai_content(content, *, param: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                texts.append(str(part.get("text") or ""))
            else:
                _refuse("only text content is possible here", param)
        return "\n".join(texts)
    _refuse("content must be a string or a list of parts", param)
    return ""


# --- OpenAI request -> Anthropic request -----------------------------------------------------
_OPENAI_REFUSED = {
    "logprobs": "logprobs are not available from Anthropic models",
    "top_logprobs": "top_logprobs are not available from Anthropic models",
    "logit_bias": "logit_bias is not available for Anthropic models",
    "audio": "audio output is not available from Anthropic models",
    "prediction": "predicted outputs are not available for Anthropic models",
    "web_search_options": "web_search_options is not available for Anthropic models",
    "functions": "the legacy `functions` field is not translated; use `tools`",
    "function_call": "the legacy `function_call` field is not translated; use `tool_choice`",
}
# reasoning_effort -> Anthropic's output_config.effort (issue 13).
ANTHROPIC_EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}


def _openai_part_to_block(part, *, param: str) -> dict:
    if not isinstance(part, dict):
        _refuse("each content part must be an object", param)
    kind = part.get("type")
    if kind == "text":
        return {"type": "text", "text": str(part.get("text") or "")}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str) or not url:
            _refuse("image_url.url is required", param)
        parsed = _parse_data_url(url)
        if parsed:
            return {
                "type": "image",
                "source": {"type": "base64", "media_type": parsed[0], "data": parsed[1]},
            }
        return {"type": "image", "source": {"type": "url", "url": url}}
    _refuse(f"content parts of type {kind!r} cannot be sent to Anthropic models", param)
    return {}


def request_to_anthropic(body: dict) -> dict:
    """An OpenAI chat request -> an Anthropic Messages request (without `stream`)."""
    for name, message in _OPENAI_REFUSED.items():
        if body.get(name) not in (None, False, {}, []):
            _refuse(message, name)
    if (body.get("n") or 1) != 1:
        _refuse("Anthropic models answer one choice per request: n must be 1", "n")
    if any(m != "text" for m in body.get("modalities") or ()):
        _refuse("Anthropic models answer text only", "modalities")
    for name in ("presence_penalty", "frequency_penalty"):
        if body.get(name) not in (None, 0, 0.0):
            _refuse(f"{name} is not available for Anthropic models", name)
    fmt = body.get("response_format")
    output_config: dict = {}
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        # Anthropic's structured outputs: output_config.format (issue 13).
        schema = (fmt.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            _refuse("response_format.json_schema.schema must be an object", "response_format")
        output_config["format"] = {"type": "json_schema", "schema": schema}
    elif isinstance(fmt, dict) and fmt.get("type") not in (None, "text"):
        _refuse(
            "response_format json_object is not available for Anthropic models; use json_schema",
            "response_format",
        )
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in ANTHROPIC_EFFORTS:
            _refuse("reasoning_effort must be minimal, low, medium or high", "reasoning_effort")
        output_config["effort"] = ANTHROPIC_EFFORTS[effort]

    system: list[str] = []
    messages: list[dict] = []

    def add(role: str, blocks: list[dict]) -> None:
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": list(blocks)})

    for i, message in enumerate(body.get("messages") or ()):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            _refuse("each message must be an object", param)
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.append(_text_of_openai_content(content, param=param))
        elif role == "user":
            if isinstance(content, str):
                add("user", [{"type": "text", "text": content}])
            elif isinstance(content, list):
                add("user", [_openai_part_to_block(p, param=param) for p in content])
            else:
                _refuse("user content must be a string or a list of parts", param)
        elif role == "assistant":
            blocks: list[dict] = []
            text = _text_of_openai_content(content, param=param)
            if text:
                blocks.append({"type": "text", "text": text})
            for j, call in enumerate(message.get("tool_calls") or ()):
                fn = (call or {}).get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": str(call.get("id") or f"toolu_{uuid.uuid4().hex[:20]}"),
                        "name": str(fn.get("name") or ""),
                        "input": _arguments_to_input(
                            fn.get("arguments"), param=f"{param}.tool_calls[{j}]"
                        ),
                    }
                )
            if message.get("audio") or message.get("function_call"):
                _refuse("assistant audio / function_call cannot be sent to Anthropic", param)
            if blocks:
                add("assistant", blocks)
        elif role == "tool":
            add(
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": str(message.get("tool_call_id") or ""),
                        "content": _text_of_openai_content(content, param=param),
                    }
                ],
            )
        else:
            _refuse(f"messages with role {role!r} cannot be sent to Anthropic models", param)

    out: dict = {"messages": messages}
    if body.get("model"):
        out["model"] = body["model"]
    if system:
        out["system"] = "\n\n".join(s for s in system if s)
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    out["max_tokens"] = int(max_tokens) if max_tokens else _default_max_tokens()
    temperature = body.get("temperature")
    if temperature is not None:
        if not 0 <= float(temperature) <= 1:
            _refuse("Anthropic models take a temperature between 0 and 1", "temperature")
        out["temperature"] = temperature
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    tools = body.get("tools")
    if tools:
        out["tools"] = []
        for k, tool in enumerate(tools):
            if not isinstance(tool, dict) or tool.get("type", "function") != "function":
                _refuse("only function tools can be sent to Anthropic models", f"tools[{k}]")
            fn = tool.get("function") or {}
            entry = {
                "name": str(fn.get("name") or ""),
                "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
            }
            if fn.get("description"):
                entry["description"] = fn["description"]
            out["tools"].append(entry)
    choice = body.get("tool_choice")
    parallel = body.get("parallel_tool_calls")
    if choice is not None or parallel is False:
        mapped: dict
        if choice in (None, "auto"):
            mapped = {"type": "auto"}
        elif choice == "none":
            mapped = {"type": "none"}
        elif choice == "required":
            mapped = {"type": "any"}
        elif isinstance(choice, dict) and choice.get("type") == "function":
            mapped = {"type": "tool", "name": str((choice.get("function") or {}).get("name"))}
        else:
            _refuse("tool_choice must be auto, none, required or a function", "tool_choice")
        if parallel is False and mapped["type"] != "none":
            mapped["disable_parallel_tool_use"] = True
        out["tool_choice"] = mapped
    user = body.get("user")
    if user:
        out["metadata"] = {"user_id": str(user)}
    if output_config:
        out["output_config"] = output_config
    return out


# --- Anthropic response -> OpenAI response ---------------------------------------------------
def response_to_openai(message: dict, *, model: str) -> dict:
    """An Anthropic message -> an OpenAI chat.completion (text joined, tool_use as tool_calls)."""
    texts: list[str] = []
    calls: list[dict] = []
    for block in message.get("content") or ():
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(str(block.get("text") or ""))
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": str(block.get("id") or ""),
                    "type": "function",
                    "function": {
                        "name": str(block.get("name") or ""),
                        "arguments": json.dumps(block.get("input") or {}, ensure_ascii=False),
                    },
                }
            )
    reply: dict = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        reply["tool_calls"] = calls
    usage = usage_from_anthropic(message.get("usage")) or Usage()
    return {
        "id": "chatcmpl-" + str(message.get("id") or uuid.uuid4().hex),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": reply,
                "logprobs": None,
                "finish_reason": STOP_TO_FINISH.get(message.get("stop_reason") or "", "stop"),
            }
        ],
        "usage": usage_to_openai(usage),
    }


async def stream_to_openai(
    events: AsyncIterator[dict], *, model: str, state: StreamState
) -> AsyncIterator[dict]:
    """Anthropic stream events -> OpenAI chunks; ends with a usage chunk (`choices: []`)."""
    cid = "chatcmpl-" + uuid.uuid4().hex[:24]
    created = int(time.time())
    tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool_calls index
    usage_raw: dict = {}

    def chunk(delta: dict, finish: str | None = None) -> dict:
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    finish: str | None = None
    async for event in events:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            usage_raw.update(message.get("usage") or {})
            yield chunk({"role": "assistant", "content": ""})
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = len(tool_index)
                tool_index[int(event.get("index") or 0)] = index
                yield chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": str(block.get("id") or ""),
                                "type": "function",
                                "function": {"name": str(block.get("name") or ""), "arguments": ""},
                            }
                        ]
                    }
                )
            elif block.get("type") == "text" and block.get("text"):
                yield chunk({"content": block["text"]})
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                yield chunk({"content": str(delta.get("text") or "")})
            elif delta.get("type") == "input_json_delta":
                index = tool_index.get(int(event.get("index") or 0), 0)
                yield chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "function": {"arguments": delta.get("partial_json", "")},
                            }
                        ]
                    }
                )
        elif kind == "message_delta":
            usage_raw.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            stop = (event.get("delta") or {}).get("stop_reason")
            if stop:
                finish = STOP_TO_FINISH.get(stop, "stop")
                state.finish_reason = finish
                yield chunk({}, finish)
        elif kind == "message_stop":
            usage = usage_from_anthropic(usage_raw) if usage_raw else state.usage
            if usage is not None:
                state.usage = usage
                yield {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": usage_to_openai(usage),
                }
    if finish is not None:
        state.finish_reason = finish


# --- Anthropic request -> OpenAI request -----------------------------------------------------
def _anthropic_block_to_part(block: dict, *, param: str) -> dict:
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": str(block.get("text") or "")}
    if kind == "image":
        source = block.get("source") or {}
        if source.get("type") == "base64":
            url = f"data:{source.get('media_type')};base64,{source.get('data')}"
        elif source.get("type") == "url":
            url = str(source.get("url") or "")
        else:
            _refuse(f"image sources of type {source.get('type')!r} are not translated", param)
        return {"type": "image_url", "image_url": {"url": url}}
    _refuse(f"content blocks of type {kind!r} cannot be sent to this model's upstream", param)
    return {}


def _tool_result_text(content, *, param: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "text":
            texts.append(str(block.get("text") or ""))
        else:
            _refuse("tool results can only carry text for this model's upstream", param)
    return "\n".join(texts)


def request_to_openai(body: dict) -> dict:
    """An Anthropic Messages request -> an OpenAI chat request (without `stream`)."""
    thinking = body.get("thinking")
    effort = None
    if isinstance(thinking, dict) and thinking.get("type") not in (None, "disabled"):
        budget = thinking.get("budget_tokens")
        if thinking.get("type") != "enabled" or not isinstance(budget, int):
            _refuse("only thinking {type: enabled, budget_tokens} is translated", "thinking")
        # The closest OpenAI knob: the upstream refuses it if the model cannot reason.
        effort = "low" if budget < 4096 else "medium" if budget < 16384 else "high"
    if body.get("top_k") is not None:
        _refuse("top_k is only available from Anthropic upstreams", "top_k")
    for name in ("mcp_servers", "container", "context_management"):
        if body.get(name):
            _refuse(f"{name} is only available from Anthropic upstreams", name)

    messages: list[dict] = []
    system = body.get("system")
    if system:
        if isinstance(system, str):
            messages.append({"role": "system", "content": system})
        else:
            text = "\n\n".join(
                str(b.get("text") or "")
                for b in system
                if isinstance(b, dict) and b.get("type") == "text"
            )
            messages.append({"role": "system", "content": text})
    for i, message in enumerate(body.get("messages") or ()):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            _refuse("each message must be an object", param)
        role = message.get("role")
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        if role == "user":
            parts: list[dict] = []
            for block in blocks:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    text = _tool_result_text(block.get("content"), param=param)
                    if block.get("is_error"):
                        text = f"Error: {text}"
                    messages.append(
                        {
                            "role": "tool",
                            "tool_call_id": str(block.get("tool_use_id") or ""),
                            "content": text,
                        }
                    )
                elif isinstance(block, dict):
                    parts.append(_anthropic_block_to_part(block, param=param))
            if parts:
                if all(p["type"] == "text" for p in parts):
                    messages.append(
                        {"role": "user", "content": "".join(p["text"] for p in parts)}
                        if len(parts) == 1
                        else {"role": "user", "content": parts}
                    )
                else:
                    messages.append({"role": "user", "content": parts})
        elif role == "assistant":
            texts, calls = [], []
            for block in blocks:
                if not isinstance(block, dict):
                    continue
                kind = block.get("type")
                if kind == "text":
                    texts.append(str(block.get("text") or ""))
                elif kind == "tool_use":
                    calls.append(
                        {
                            "id": str(block.get("id") or ""),
                            "type": "function",
                            "function": {
                                "name": str(block.get("name") or ""),
                                "arguments": json.dumps(block.get("input") or {}),
                            },
                        }
                    )
                elif kind in ("thinking", "redacted_thinking"):
                    continue  # the model's own earlier reasoning: not replayable elsewhere
                else:
                    _refuse(f"assistant blocks of type {kind!r} are not translated", param)
            if not texts and not calls:
                continue  # only earlier thinking: nothing another provider can take
            reply: dict = {"role": "assistant", "content": "".join(texts) or None}
            if calls:
                reply["tool_calls"] = calls
            messages.append(reply)
        else:
            _refuse(f"messages with role {role!r} are not allowed", param)

    out: dict = {"messages": messages}
    if body.get("model"):
        out["model"] = body["model"]
    if body.get("max_tokens") is not None:
        out["max_tokens"] = body["max_tokens"]
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    if effort is not None:
        out["reasoning_effort"] = effort
    tools = body.get("tools")
    if tools:
        out["tools"] = []
        for k, tool in enumerate(tools):
            if not isinstance(tool, dict) or tool.get("type") not in (None, "custom"):
                _refuse(
                    "server tools are only available from Anthropic upstreams; "
                    "custom tools (name, input_schema) are translated",
                    f"tools[{k}]",
                )
            fn = {
                "name": str(tool.get("name") or ""),
                "parameters": tool.get("input_schema") or {"type": "object", "properties": {}},
            }
            if tool.get("description"):
                fn["description"] = tool["description"]
            out["tools"].append({"type": "function", "function": fn})
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "auto":
            out["tool_choice"] = "auto"
        elif kind == "any":
            out["tool_choice"] = "required"
        elif kind == "none":
            out["tool_choice"] = "none"
        elif kind == "tool":
            out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        else:
            _refuse("tool_choice must be auto, any, tool or none", "tool_choice")
        if choice.get("disable_parallel_tool_use"):
            out["parallel_tool_calls"] = False
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and metadata.get("user_id"):
        out["user"] = str(metadata["user_id"])
    return out


# --- OpenAI response -> Anthropic response ---------------------------------------------------
def _new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex[:24]


def response_to_anthropic(completion: dict, *, model: str) -> dict:
    """An OpenAI chat.completion -> an Anthropic message."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    content: list[dict] = []
    text = message.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal and not text:
        content.append({"type": "text", "text": refusal})
    for call in message.get("tool_calls") or ():
        fn = (call or {}).get("function") or {}
        try:
            value = json.loads(fn.get("arguments") or "{}")
        except (TypeError, ValueError):
            value = {"arguments": fn.get("arguments")}
        content.append(
            {
                "type": "tool_use",
                "id": str(call.get("id") or f"toolu_{uuid.uuid4().hex[:20]}"),
                "name": str(fn.get("name") or ""),
                "input": value if isinstance(value, dict) else {"value": value},
            }
        )
    from routing.providers.openai import usage_from_openai

    usage = usage_from_openai(completion.get("usage"))
    return {
        "id": _new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": FINISH_TO_STOP.get(choice.get("finish_reason") or "", "end_turn"),
        "stop_sequence": None,
        "usage": usage_to_anthropic(usage),
    }


async def stream_to_anthropic(
    chunks: AsyncIterator[dict], *, model: str, state: StreamState
) -> AsyncIterator[dict]:
    """OpenAI chunks -> Anthropic events: message_start, one block per text run / tool call,
    message_delta (stop_reason and usage) and message_stop."""
    from routing.providers.openai import usage_from_openai

    started = False
    block_index = -1
    open_kind: str | None = None  # "text" or "tool:<openai index>"
    finish: str | None = None
    usage: Usage | None = None

    def start_event() -> dict:
        return {
            "type": "message_start",
            "message": {
                "id": _new_message_id(),
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            },
        }

    async for chunk in chunks:
        if not started:
            started = True
            yield start_event()
        found = usage_from_openai(chunk.get("usage"))
        if found is not None:
            usage = found
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                if open_kind != "text":
                    if open_kind is not None:
                        yield {"type": "content_block_stop", "index": block_index}
                    block_index += 1
                    open_kind = "text"
                    yield {
                        "type": "content_block_start",
                        "index": block_index,
                        "content_block": {"type": "text", "text": ""},
                    }
                yield {
                    "type": "content_block_delta",
                    "index": block_index,
                    "delta": {"type": "text_delta", "text": text},
                }
            for call in delta.get("tool_calls") or ():
                if not isinstance(call, dict):
                    continue
                key = f"tool:{call.get('index', 0)}"
                fn = call.get("function") or {}
                if open_kind != key:
                    if open_kind is not None:
                        yield {"type": "content_block_stop", "index": block_index}
                    block_index += 1
                    open_kind = key
                    yield {
                        "type": "content_block_start",
                        "index": block_index,
                        "content_block": {
                            "type": "tool_use",
                            "id": str(call.get("id") or f"toolu_{uuid.uuid4().hex[:20]}"),
                            "name": str(fn.get("name") or ""),
                            "input": {},
                        },
                    }
                arguments = fn.get("arguments")
                if arguments:
                    yield {
                        "type": "content_block_delta",
                        "index": block_index,
                        "delta": {"type": "input_json_delta", "partial_json": arguments},
                    }
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
    if not started:
        yield start_event()
    if open_kind is not None:
        yield {"type": "content_block_stop", "index": block_index}
    usage = usage or state.usage
    if usage is not None:
        state.usage = usage
    stop_reason = FINISH_TO_STOP.get(finish or "", "end_turn")
    state.finish_reason = stop_reason
    yield {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
        "usage": usage_to_anthropic(usage),
    }
    yield {"type": "message_stop"}
