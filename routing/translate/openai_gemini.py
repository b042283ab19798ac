"""OpenAI chat completions <-> Gemini `generateContent` / `streamGenerateContent`.

Gemini takes images only inline (`inlineData`), so an image given by a plain URL is refused
rather than fetched from the internet. Tool schemas are reduced to Gemini's OpenAPI subset.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator

from routing.providers.base import StreamState, UnsupportedFeature, Usage
from routing.request_bounds import output_tokens_requested
from routing.translate.openai_anthropic import usage_to_openai

FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "MALFORMED_FUNCTION_CALL": "stop",
}
_SCHEMA_KEYS = {
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
    "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
    "pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum",
}  # fmt: skip

THINKING_BUDGETS = {"minimal": 0, "low": 1024, "medium": 8192, "high": 24576}
_REFUSED = {
    "logprobs": "logprobs are not translated for Gemini models",
    "top_logprobs": "top_logprobs are not translated for Gemini models",
    "logit_bias": "logit_bias is not available for Gemini models",
    "audio": "audio output is not translated for Gemini models",
    "prediction": "predicted outputs are not available for Gemini models",
    "web_search_options": "web_search_options is not translated for Gemini models",
    "functions": "the legacy `functions` field is not translated; use `tools`",
    "function_call": "the legacy `function_call` field is not translated; use `tool_choice`",
}


def _refuse(message: str, param: str) -> None:
    raise UnsupportedFeature(message, param=param)


def _modality_count(details, modality: str) -> int:
    if not isinstance(details, list):
        return 0
    return sum(
        int(d.get("tokenCount") or 0)
        for d in details
        if isinstance(d, dict) and d.get("modality") == modality
    )


def usage_from_gemini(meta: dict | None) -> Usage | None:
    """`usageMetadata` -> Usage. promptTokenCount already includes the cached part
    (`cachedContentTokenCount`); tool-use prompt tokens (`toolUsePromptTokenCount`) are further
    input; thinking (`thoughtsTokenCount`) is output, billed at the output price, kept as
    reasoning; audio input from `promptTokensDetails`."""
    if not isinstance(meta, dict) or "promptTokenCount" not in meta:
        return None
    try:
        prompt = int(meta.get("promptTokenCount") or 0) + int(
            meta.get("toolUsePromptTokenCount") or 0
        )
        thoughts = int(meta.get("thoughtsTokenCount") or 0)
        output = int(meta.get("candidatesTokenCount") or 0) + thoughts
        cached = int(meta.get("cachedContentTokenCount") or 0)
        audio = _modality_count(meta.get("promptTokensDetails"), "AUDIO")
        audio -= _modality_count(meta.get("cacheTokensDetails"), "AUDIO")
    except (TypeError, ValueError):
        return None
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=output,
        cached_tokens=cached,
        reasoning_tokens=thoughts,
        input_audio_tokens=max(audio, 0),
    )


def schema_to_gemini(schema):
    """JSON Schema -> Gemini's Schema subset (drops `$schema`, `additionalProperties`, ...;
    `type: [x, "null"]` becomes `type: x, nullable: true`)."""
    if isinstance(schema, list):
        return [schema_to_gemini(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict = {}
    for key, value in schema.items():
        if key not in _SCHEMA_KEYS:
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: schema_to_gemini(sub) for name, sub in value.items()}
        elif key in ("items", "anyOf"):
            out[key] = schema_to_gemini(value)
        elif key == "type" and isinstance(value, list):
            kinds = [v for v in value if v != "null"]
            out["type"] = kinds[0] if kinds else "string"
            if "null" in value:
                out["nullable"] = True
        else:
            out[key] = value
    return out


def _part(part, *, param: str) -> dict:
    if not isinstance(part, dict):
        _refuse("each content part must be an object", param)
    kind = part.get("type")
    if kind == "text":
        return {"text": str(part.get("text") or "")}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        url = str(url or "")
        header, sep, data = url[5:].partition(",") if url.startswith("data:") else ("", "", "")
        if not sep or ";base64" not in header:
            _refuse(
                "Gemini models take images inline only: send the image as a base64 data URL "
                "(data:image/png;base64,...) instead of a link",
                param,
            )
        return {"inlineData": {"mimeType": header.split(";")[0], "data": data}}
    _refuse(f"content parts of type {kind!r} are not translated for Gemini models", param)
    return {}


def _text(content, *, param: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for part in content if isinstance(content, list) else ():
        if isinstance(part, dict) and part.get("type") == "text":
            texts.append(str(part.get("text") or ""))
        else:
            _refuse("only text content is possible here", param)
    return "\n".join(texts)


def request_to_gemini(body: dict) -> dict:
    """An OpenAI chat request -> a Gemini GenerateContentRequest (the model goes in the URL)."""
    for name, message in _REFUSED.items():
        if body.get(name) not in (None, False, {}, []):
            _refuse(message, name)
    if (body.get("n") or 1) != 1:
        _refuse("n must be 1 for Gemini models through this gateway", "n")
    if any(m != "text" for m in body.get("modalities") or ()):
        _refuse("only text output is translated for Gemini models", "modalities")
    if body.get("parallel_tool_calls") is False:
        _refuse("Gemini models cannot be told to avoid parallel tool calls", "parallel_tool_calls")

    system: list[str] = []
    contents: list[dict] = []
    call_names: dict[str, str] = {}

    def add(role: str, parts: list[dict]) -> None:
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": list(parts)})

    for i, message in enumerate(body.get("messages") or ()):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            _refuse("each message must be an object", param)
        role, content = message.get("role"), message.get("content")
        if role in ("system", "developer"):
            system.append(_text(content, param=param))
        elif role == "user":
            if isinstance(content, str):
                add("user", [{"text": content}])
            elif isinstance(content, list):
                add("user", [_part(p, param=param) for p in content])
            else:
                _refuse("user content must be a string or a list of parts", param)
        elif role == "assistant":
            parts: list[dict] = []
            text = _text(content, param=param)
            if text:
                parts.append({"text": text})
            for j, call in enumerate(message.get("tool_calls") or ()):
                fn = (call or {}).get("function") or {}
                try:
                    args = json.loads(fn.get("arguments") or "{}")
                except (TypeError, ValueError):
                    _refuse("tool call arguments must be JSON", f"{param}.tool_calls[{j}]")
                name = str(fn.get("name") or "")
                call_id = str(call.get("id") or "")
                call_names[call_id] = name
                part = {"functionCall": {"name": name, "args": args}}
                signature = _signature_from(call_id)
                if signature:
                    part["thoughtSignature"] = signature
                parts.append(part)
            if parts:
                add("model", parts)
        elif role == "tool":
            call_id = str(message.get("tool_call_id") or "")
            name = call_names.get(call_id)
            if name is None:
                _refuse("a tool message must answer an earlier assistant tool call", param)
            text = _text(content, param=param)
            try:
                value = json.loads(text)
            except ValueError:
                value = None
            response = value if isinstance(value, dict) else {"content": text}
            add("user", [{"functionResponse": {"name": name, "response": response}}])
        else:
            _refuse(f"messages with role {role!r} are not translated for Gemini models", param)

    out: dict = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": [{"text": "\n\n".join(s for s in system if s)}]}
    config: dict = {}
    if body.get("temperature") is not None:
        config["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        config["topP"] = body["top_p"]
    # The engine always sets the limit its hold paid for; read in the one order it uses.
    max_tokens = output_tokens_requested(body)
    if max_tokens:
        config["maxOutputTokens"] = max_tokens
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    for source, name in (
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
        ("seed", "seed"),
    ):
        if body.get(source) is not None:
            config[name] = body[source]
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") not in (None, "text"):
        if fmt.get("type") == "json_object":
            config["responseMimeType"] = "application/json"
        elif fmt.get("type") == "json_schema":
            config["responseMimeType"] = "application/json"
            config["responseSchema"] = schema_to_gemini(
                (fmt.get("json_schema") or {}).get("schema") or {}
            )
        else:
            _refuse("unknown response_format type", "response_format")
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in THINKING_BUDGETS:
            _refuse("reasoning_effort must be minimal, low, medium or high", "reasoning_effort")
        config["thinkingConfig"] = {"thinkingBudget": THINKING_BUDGETS[effort]}
    if config:
        out["generationConfig"] = config
    tools = body.get("tools")
    if tools:
        declarations = []
        for k, tool in enumerate(tools):
            if not isinstance(tool, dict) or tool.get("type", "function") != "function":
                _refuse("only function tools are translated for Gemini models", f"tools[{k}]")
            fn = tool.get("function") or {}
            decl = {"name": str(fn.get("name") or "")}
            if fn.get("description"):
                decl["description"] = fn["description"]
            params = schema_to_gemini(fn.get("parameters") or {})
            if params.get("properties"):
                decl["parameters"] = params
            declarations.append(decl)
        out["tools"] = [{"functionDeclarations": declarations}]
    choice = body.get("tool_choice")
    if choice is not None:
        if choice == "auto":
            fcc = {"mode": "AUTO"}
        elif choice == "none":
            fcc = {"mode": "NONE"}
        elif choice == "required":
            fcc = {"mode": "ANY"}
        elif isinstance(choice, dict) and choice.get("type") == "function":
            name = str((choice.get("function") or {}).get("name"))
            fcc = {"mode": "ANY", "allowedFunctionNames": [name]}
        else:
            _refuse("tool_choice must be auto, none, required or a function", "tool_choice")
        out["toolConfig"] = {"functionCallingConfig": fcc}
    return out


def _candidate_parts(data: dict) -> tuple[list[dict], str | None]:
    candidates = data.get("candidates") or []
    if not candidates:
        blocked = (data.get("promptFeedback") or {}).get("blockReason")
        return [], ("SAFETY" if blocked else None)
    candidate = candidates[0] if isinstance(candidates[0], dict) else {}
    parts = (candidate.get("content") or {}).get("parts") or []
    return [p for p in parts if isinstance(p, dict)], candidate.get("finishReason")


SIGNATURE_MARK = "__ts_"


def _call_id(part: dict) -> str:
    """A tool-call id. Gemini's `thoughtSignature` (which thinking models require back with
    the function call on the next turn) rides inside it, URL-safe, since OpenAI and Anthropic
    clients echo ids verbatim and have no other place for it."""
    call_id = str(part["functionCall"].get("id") or "call_" + uuid.uuid4().hex[:24])
    signature = part.get("thoughtSignature")
    if isinstance(signature, str) and signature:
        encoded = signature.replace("+", "-").replace("/", "_").rstrip("=")
        call_id = f"{call_id}{SIGNATURE_MARK}{encoded}"
    return call_id


def _signature_from(call_id: str) -> str | None:
    _, mark, encoded = call_id.partition(SIGNATURE_MARK)
    if not mark or not encoded:
        return None
    padded = encoded + "=" * (-len(encoded) % 4)
    return padded.replace("-", "+").replace("_", "/")


def _tool_call(part: dict, index: int) -> dict:
    call = part["functionCall"]
    return {
        "index": index,
        "id": _call_id(part),
        "type": "function",
        "function": {
            "name": str(call.get("name") or ""),
            "arguments": json.dumps(call.get("args") or {}, ensure_ascii=False),
        },
    }


def response_from_gemini(data: dict, *, model: str) -> dict:
    """A Gemini GenerateContentResponse -> an OpenAI chat.completion."""
    parts, reason = _candidate_parts(data)
    texts = [str(p["text"]) for p in parts if "text" in p and not p.get("thought")]
    calls = [_tool_call(p, i) for i, p in enumerate(p for p in parts if "functionCall" in p)]
    for call in calls:
        call.pop("index")
    message: dict = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    finish = "tool_calls" if calls else FINISH.get(reason or "STOP", "stop")
    usage = usage_from_gemini(data.get("usageMetadata")) or Usage()
    return {
        "id": "chatcmpl-" + str(data.get("responseId") or uuid.uuid4().hex),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage_to_openai(usage),
    }


async def stream_from_gemini(
    responses: AsyncIterator[dict], *, model: str, state: StreamState
) -> AsyncIterator[dict]:
    """Gemini SSE responses -> OpenAI chunks, ending with a usage chunk when Gemini reported one."""
    cid = "chatcmpl-" + uuid.uuid4().hex[:24]
    created = int(time.time())
    tool_count = 0
    finish: str | None = None

    def chunk(delta: dict, reason: str | None = None) -> dict:
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}],
        }

    yield chunk({"role": "assistant", "content": ""})
    async for data in responses:
        usage = usage_from_gemini(data.get("usageMetadata"))
        if usage is not None:
            state.usage = usage
        parts, reason = _candidate_parts(data)
        for part in parts:
            if "text" in part and not part.get("thought"):
                if part["text"]:
                    state.delivered_text.append(str(part["text"]))
                    yield chunk({"content": str(part["text"])})
            elif "functionCall" in part:
                call = _tool_call(part, tool_count)
                tool_count += 1
                state.delivered_text.append(
                    call["function"]["name"] + call["function"]["arguments"]
                )
                yield chunk({"tool_calls": [call]})
        if reason:
            finish = "tool_calls" if tool_count else FINISH.get(reason, "stop")
    if finish is not None:
        state.finish_reason = finish
        yield chunk({}, finish)
    if state.usage is not None and finish is not None:
        yield {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": usage_to_openai(state.usage),
        }
