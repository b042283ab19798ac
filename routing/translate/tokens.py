"""A careful local token estimate for requests, without downloading a tokenizer.

Used by `/v1/messages/count_tokens` when the upstream cannot count and wherever a prompt size
must be guessed. ~4 characters per token for text, a small overhead per message (role and
separators), a fixed cost per image (Anthropic's ~1,600 tokens for a ~1.15 megapixel image),
and tool definitions counted from their JSON.
"""

from __future__ import annotations

import json
import math

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 4
REQUEST_OVERHEAD = 3
IMAGE_TOKENS = 1600
TOOLS_OVERHEAD = 16


def text_tokens(text: str) -> int:
    """Tokens of one piece of text: ~4 characters each, but never fewer than the word count
    (short words and punctuation are a token each)."""
    if not text:
        return 0
    return max(math.ceil(len(text) / CHARS_PER_TOKEN), len(text.split()))


def _json_tokens(value) -> int:
    return text_tokens(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _openai_content(content) -> int:
    if isinstance(content, str):
        return text_tokens(content)
    total = 0
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "text":
                total += text_tokens(str(part.get("text") or ""))
            elif kind in ("image_url", "input_image"):
                total += IMAGE_TOKENS
            else:
                total += _json_tokens(part)
    return total


def estimate_tokens_openai(body: dict) -> int:
    """Prompt tokens of an OpenAI chat request (messages, tool calls, tool definitions)."""
    total = REQUEST_OVERHEAD
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        total += MESSAGE_OVERHEAD + _openai_content(message.get("content"))
        for call in message.get("tool_calls") or ():
            if isinstance(call, dict):
                fn = call.get("function") or {}
                total += text_tokens(str(fn.get("name") or ""))
                total += text_tokens(str(fn.get("arguments") or ""))
    tools = body.get("tools")
    if tools:
        total += TOOLS_OVERHEAD + _json_tokens(tools)
    return total


def _anthropic_content(content) -> int:
    if isinstance(content, str):
        return text_tokens(content)
    total = 0
    if isinstance(content, list):
        for block in content:
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text":
                total += text_tokens(str(block.get("text") or ""))
            elif kind == "image":
                total += IMAGE_TOKENS
            elif kind == "tool_use":
                total += text_tokens(str(block.get("name") or "")) + _json_tokens(
                    block.get("input") or {}
                )
            elif kind == "tool_result":
                total += _anthropic_content(block.get("content"))
            elif kind == "thinking":
                total += text_tokens(str(block.get("thinking") or ""))
            else:
                total += _json_tokens(block)
    return total


def estimate_tokens_anthropic(body: dict) -> int:
    """Input tokens of an Anthropic Messages request (system, messages, tools)."""
    total = REQUEST_OVERHEAD + _anthropic_content(body.get("system"))
    for message in body.get("messages") or ():
        if isinstance(message, dict):
            total += MESSAGE_OVERHEAD + _anthropic_content(message.get("content"))
    tools = body.get("tools")
    if tools:
        total += TOOLS_OVERHEAD + _json_tokens(tools)
    return total
