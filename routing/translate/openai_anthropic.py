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
from routing.request_bounds import output_tokens_requested

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
    cache reads are the cached part, cache creation is split into 5-minute and 1-hour writes
    (`cache_creation.ephemeral_5m_input_tokens` / `ephemeral_1h_input_tokens`; without that
    object every write is a 5-minute one)."""
    if not isinstance(data, dict):
        return None
    try:
        fresh = int(data.get("input_tokens") or 0)
        read = int(data.get("cache_read_input_tokens") or 0)
        created = int(data.get("cache_creation_input_tokens") or 0)
        output = int(data.get("output_tokens") or 0)
        split = data.get("cache_creation")
        write_1h = 0
        if isinstance(split, dict):
            write_1h = int(split.get("ephemeral_1h_input_tokens") or 0)
            write_5m = int(split.get("ephemeral_5m_input_tokens") or 0)
            created = max(created, write_5m + write_1h)
    except (TypeError, ValueError):
        return None
    return Usage(
        prompt_tokens=fresh + read + created,
        completion_tokens=output,
        cached_tokens=read,
        cache_write_tokens=created - write_1h,
        cache_write_1h_tokens=write_1h,
    )


def usage_to_openai(usage: Usage) -> dict:
    """Chat-completions usage with nothing folded away: cache reads, (relay-style) cache writes
    and input audio in `prompt_tokens_details`, reasoning and audio in
    `completion_tokens_details`."""
    prompt_details = {"cached_tokens": usage.cached_tokens}
    writes = usage.cache_write_tokens + usage.cache_write_1h_tokens
    if writes:
        prompt_details["cache_write_tokens"] = writes
    if usage.input_audio_tokens:
        prompt_details["audio_tokens"] = usage.input_audio_tokens
    data = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": prompt_details,
    }
    if usage.reasoning_tokens or usage.output_audio_tokens:
        data["completion_tokens_details"] = {
            "reasoning_tokens": usage.reasoning_tokens,
            "audio_tokens": usage.output_audio_tokens,
        }
    return data


def usage_to_anthropic(usage: Usage | None) -> dict:
    """Messages usage as Anthropic reports it: `input_tokens` is only the fresh input; cache
    reads and writes are their own fields (Claude Code reads them)."""
    if usage is None:
        return {
            "input_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 0,
        }
    writes = usage.cache_write_tokens + usage.cache_write_1h_tokens
    data = {
        "input_tokens": max(usage.prompt_tokens - usage.cached_tokens - writes, 0),
        "cache_creation_input_tokens": writes,
        "cache_read_input_tokens": usage.cached_tokens,
        "output_tokens": usage.completion_tokens,
    }
    if writes:
        data["cache_creation"] = {
            "ephemeral_5m_input_tokens": usage.cache_write_tokens,
            "ephemeral_1h_input_tokens": usage.cache_write_1h_tokens,
        }
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
    max_tokens = output_tokens_requested(body)  # the one order the hold reads them in
    out["max_tokens"] = max_tokens or _default_max_tokens()
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
# What a translated route does with each Messages field (docs/providers.md). The fields the
# translation reads; everything else is a server-side feature with no OpenAI/Gemini
# equivalent: dropped and named (x-tokenforge-dropped, UsageRecord.dropped), never a 400,
# because real clients send new ones with every release. A few change what the model can do
# so much that dropping them would be a wrong answer, not a weaker one: those are refused.
_MESSAGES_TRANSLATED = frozenset(
    (
        "model",
        "messages",
        "system",
        "max_tokens",
        "stream",
        "temperature",
        "top_p",
        "stop_sequences",
        "tools",
        "tool_choice",
        "metadata",
        "thinking",
        "output_config",
    )
)
_MESSAGES_REFUSED = {
    "top_k": "top_k is only available from Anthropic upstreams",
    "mcp_servers": "mcp_servers (remote MCP tools run by Anthropic) are only available from "
    "Anthropic upstreams",
    "container": "container (Anthropic's code-execution sandbox) is only available from "
    "Anthropic upstreams",
}
# Anthropic `output_config.effort` -> the OpenAI reasoning_effort (Gemini: thinkingConfig).
EFFORT_TO_REASONING = {
    "minimal": "minimal",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
    "max": "high",
}
# Assistant blocks produced by Anthropic's servers (its tools, its context editing): they have
# no counterpart elsewhere and are left out of the history sent to a translated route.
_SERVER_BLOCK_SUFFIXES = ("_tool_result", "server_tool_use", "mcp_tool_use", "container_upload")


def _is_server_tool(tool) -> bool:
    """Anthropic-defined tools (`web_search_20250305`, `bash_20250124`, `tool_search_tool_*`,
    ...) carry a versioned `type`; custom tools have none or `custom`."""
    return isinstance(tool, dict) and tool.get("type") not in (None, "custom")


def _is_server_block(block) -> bool:
    kind = block.get("type") if isinstance(block, dict) else None
    return isinstance(kind, str) and kind.endswith(_SERVER_BLOCK_SUFFIXES)


def _reasoning_effort(body: dict) -> str | None:
    """`thinking` and `output_config.effort` -> one reasoning_effort. Adaptive thinking takes
    the client's effort (Anthropic's default is high); enabled thinking maps its budget."""
    config = body.get("output_config")
    effort = config.get("effort") if isinstance(config, dict) else None
    mapped = EFFORT_TO_REASONING.get(effort) if isinstance(effort, str) else None
    thinking = body.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "disabled":
        return mapped
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if mapped is None and isinstance(budget, int) and not isinstance(budget, bool):
            mapped = "low" if budget < 4096 else "medium" if budget < 16384 else "high"
        return mapped or "medium"
    if kind == "adaptive":
        return mapped or "high"
    return mapped


def messages_dropped(body: dict) -> list[str]:
    """What a translated (OpenAI-format or Gemini) route leaves out of this Messages request,
    as names for `x-tokenforge-dropped`. Empty for a plain request."""
    dropped = [
        name
        for name in body
        if name not in _MESSAGES_TRANSLATED
        and name not in _MESSAGES_REFUSED
        and body[name] not in (None, False, {}, [])
    ]
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") not in (
        None,
        "enabled",
        "adaptive",
        "disabled",
    ):
        dropped.append("thinking")
    config = body.get("output_config")
    if isinstance(config, dict):
        for name, value in config.items():
            if name == "effort" and value in EFFORT_TO_REASONING:
                continue
            if name == "format" and isinstance(value, dict) and value.get("type") == "json_schema":
                continue
            dropped.append(f"output_config.{name}")
    for tool in body.get("tools") or ():
        if _is_server_tool(tool):
            dropped.append(f"tools.{tool.get('name') or tool.get('type')}")
        elif isinstance(tool, dict) and tool.get("defer_loading"):
            dropped.append(f"tools.{tool.get('name')}")
    server_blocks = sorted(
        {
            str(block.get("type"))
            for message in body.get("messages") or ()
            if isinstance(message, dict) and isinstance(message.get("content"), list)
            for block in message["content"]
            if _is_server_block(block)
        }
    )
    dropped += [f"messages.content.{kind}" for kind in server_blocks]
    return list(dict.fromkeys(dropped))


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
    if kind == "document":
        source = block.get("source") or {}
        if source.get("type") == "text":
            return {"type": "text", "text": str(source.get("data") or "")}
        if source.get("type") == "base64" and source.get("media_type") == "application/pdf":
            part = {"file_data": f"data:application/pdf;base64,{source.get('data')}"}
            part["filename"] = str(block.get("title") or "document.pdf")
            return {"type": "file", "file": part}
        _refuse("only PDF (base64) and plain-text documents are translated", param)
    _refuse(f"content blocks of type {kind!r} cannot be sent to this model's upstream", param)
    return {}


def _text_of_blocks(content) -> str:
    """A system message's text (a string or text blocks; cache_control is left out)."""
    if isinstance(content, str):
        return content
    return "\n\n".join(
        str(b.get("text") or "")
        for b in content or ()
        if isinstance(b, dict) and b.get("type") == "text"
    )


def _tool_result_parts(content, *, param: str) -> tuple[str, list[dict]]:
    """A tool_result's text, and its images (sent after it in a user message, since OpenAI
    tool messages carry text only)."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    texts, images = [], []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind in ("image", "document"):
            images.append(_anthropic_block_to_part(block, param=param))
        elif kind == "tool_reference":
            texts.append(f"(tool {block.get('tool_name')} is available)")
        else:
            _refuse(f"tool results of type {kind!r} are not translated", param)
    return "\n".join(texts), images


def request_to_openai(body: dict) -> dict:
    """An Anthropic Messages request -> an OpenAI chat request (without `stream`).

    Mid-conversation `system` messages stay in place as system messages; `thinking` and
    `output_config.effort` become `reasoning_effort`; what `messages_dropped` names is left
    out; `_MESSAGES_REFUSED` raises UnsupportedFeature (400 if no other route can serve it)."""
    for name, reason in _MESSAGES_REFUSED.items():
        if body.get(name) not in (None, [], {}):
            _refuse(reason, name)

    messages: list[dict] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _text_of_blocks(system)})
    for i, message in enumerate(body.get("messages") or ()):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            _refuse("each message must be an object", param)
        role = message.get("role")
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        if role == "system":
            text = _text_of_blocks(content)
            if text:
                messages.append({"role": "system", "content": text})
        elif role == "user":
            parts: list[dict] = []
            late_images: list[dict] = []
            for block in blocks:
                if not isinstance(block, dict) or _is_server_block(block):
                    continue
                if block.get("type") == "tool_result":
                    text, images = _tool_result_parts(block.get("content"), param=param)
                    if block.get("is_error"):
                        text = f"Error: {text}"
                    messages.append(
                        {
                            "role": "tool",
                            "tool_call_id": str(block.get("tool_use_id") or ""),
                            "content": text,
                        }
                    )
                    late_images.extend(images)
                else:
                    parts.append(_anthropic_block_to_part(block, param=param))
            parts = late_images + parts
            if parts:
                if all(p["type"] == "text" for p in parts):
                    messages.append(
                        {"role": "user", "content": parts[0]["text"]}
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
                elif kind in ("thinking", "redacted_thinking") or _is_server_block(block):
                    continue  # earlier reasoning / server tool turns: not replayable elsewhere
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
    effort = _reasoning_effort(body)
    if effort is not None:
        out["reasoning_effort"] = effort
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": fmt.get("schema") or {}},
        }
    tools = [
        t
        for t in body.get("tools") or ()
        if not _is_server_tool(t) and not (isinstance(t, dict) and t.get("defer_loading"))
    ]
    if tools:
        out["tools"] = []
        for k, tool in enumerate(tools):
            if not isinstance(tool, dict):
                _refuse("each tool must be an object", f"tools[{k}]")
            fn = {
                "name": str(tool.get("name") or ""),
                "parameters": tool.get("input_schema") or {"type": "object", "properties": {}},
            }
            if tool.get("description"):
                fn["description"] = tool["description"]
            if tool.get("strict") is True:
                fn["strict"] = True
            out["tools"].append({"type": "function", "function": fn})
    choice = body.get("tool_choice")
    # A tool_choice whose tools were all dropped (server tools) would be refused upstream.
    if isinstance(choice, dict) and (tools or not body.get("tools")):
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
        if choice.get("disable_parallel_tool_use") and kind != "none":
            out["parallel_tool_calls"] = False
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and metadata.get("user_id"):
        out["user"] = str(metadata["user_id"])[:256]
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
