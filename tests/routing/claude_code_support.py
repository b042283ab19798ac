"""What the Claude Code tests share: the captured first request of Claude Code 2.1.328
(`../shared/fixtures/`), grown back to its real size, and an Anthropic mock that answers in
text the way a model greeting a user would (the stock mock calls the first offered tool,
which for Claude Code would start a sub-agent)."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path

from tests.mocks.anthropic_upstream import MockAnthropic
from tests.mocks.openai_upstream import MockOpenAI

FIXTURES = Path(os.environ.get("TF_SHARED_FIXTURES", "/work/shared/fixtures"))
CLAUDE_CODE_FIXTURE = FIXTURES / "claude-code-2.1.328-messages.json"
_PLACEHOLDER = re.compile(r"^\((\d+) characters of the client's own text\)$")


def _grow(value):
    """Placeholders `(N characters of the client's own text)` -> N characters of text, so the
    request has the size Claude Code really sends (~100 KB)."""
    if isinstance(value, str):
        match = _PLACEHOLDER.match(value)
        if match:
            n = int(match.group(1))
            return ("Claude Code instructions. " * (n // 26 + 1))[:n]
        return value
    if isinstance(value, list):
        return [_grow(v) for v in value]
    if isinstance(value, dict):
        return {k: _grow(v) for k, v in value.items()}
    return value


def claude_code_request() -> dict:
    """{"path", "headers", "body"} of Claude Code's first request, as it sends it."""
    data = json.loads(CLAUDE_CODE_FIXTURE.read_text())
    return {
        "path": data["path"],
        "headers": dict(data["headers"]),
        "body": _grow(copy.deepcopy(data["body"])),
    }


class TalkingAnthropic(MockAnthropic):
    """The Anthropic mock, answering text even when tools are offered."""

    text = "Hello! How can I help you today?"

    def _content(self, body: dict) -> tuple[list[dict], str]:
        return [{"type": "text", "text": self.text}], "end_turn"


class NoReasoningOpenAI(MockOpenAI):
    """The OpenAI mock as a model without reasoning (gpt-4o): a request carrying
    `reasoning_effort` is refused with OpenAI's 400, anything else answered as usual."""

    async def app(self, scope, receive, send):
        if scope["type"] != "http":
            return
        raw, more = b"", True
        while more:
            message = await receive()
            raw += message.get("body", b"")
            more = message.get("more_body", False)
        body = json.loads(raw or b"{}")
        if "reasoning_effort" in body:
            with self._lock:
                self.requests.append({"path": scope["path"], "headers": {}, "body": body})
            error = {
                "message": "Unsupported parameter: 'reasoning_effort' is not supported with "
                "this model.",
                "type": "invalid_request_error",
                "param": "reasoning_effort",
                "code": "unsupported_parameter",
            }
            return await self._json(send, 400, {"error": error})
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        return await super().app(scope, replay, send)


def _last_tool_result_text(messages: list) -> str | None:
    """The text of the tool result the conversation ends with (either wire format), if any."""
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return str(last.get("content") or "")
    content = last.get("content") if isinstance(last.get("content"), list) else []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            inner = block.get("content")
            if isinstance(inner, list):
                inner = "".join(str(b.get("text") or "") for b in inner if isinstance(b, dict))
            return str(inner or "")
    return None


class ReadingAnthropic(MockAnthropic):
    """Asks Claude Code to `Read` a file, then answers with what the tool returned."""

    path = ""

    def _content(self, body: dict) -> tuple[list[dict], str]:
        result = _last_tool_result_text(
            [m for m in body.get("messages") or () if m.get("role") != "system"]
        )
        if result is not None:
            return [{"type": "text", "text": f"The file says: {result}"}], "end_turn"
        call = {
            "type": "tool_use",
            "id": "toolu_01" + "a" * 20,
            "name": "Read",
            "input": {"file_path": self.path},
        }
        return [{"type": "text", "text": "Reading it."}, call], "tool_use"


class ReadingOpenAI(MockOpenAI):
    """The same conversation in OpenAI's wire format (streamed tool-call deltas included)."""

    path = ""

    async def app(self, scope, receive, send):
        if scope["type"] != "http":
            return
        raw, more = b"", True
        while more:
            message = await receive()
            raw += message.get("body", b"")
            more = message.get("more_body", False)
        body = json.loads(raw or b"{}")
        with self._lock:
            self.requests.append({"path": scope["path"], "headers": {}, "body": body})
        messages = [m for m in body.get("messages") or () if m.get("role") != "system"]
        result = _last_tool_result_text(messages)
        if result is not None:
            deltas = [{"role": "assistant", "content": "The file says: "}, {"content": result}]
            finish = "stop"
        else:
            arguments = json.dumps({"file_path": self.path})
            deltas = [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_read_1",
                            "type": "function",
                            "function": {"name": "Read", "arguments": ""},
                        }
                    ],
                },
                *[
                    {"tool_calls": [{"index": 0, "function": {"arguments": arguments[i : i + 9]}}]}
                    for i in range(0, len(arguments), 9)
                ],
            ]
            finish = "tool_calls"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        base = {"id": "chatcmpl-read", "object": "chat.completion.chunk", "created": 1}
        chunks = [
            {**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas
        ]
        chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        chunks.append({**base, "choices": [], "usage": self._usage()})
        for chunk in chunks:
            payload = b"data: " + json.dumps(chunk).encode() + b"\n\n"
            await send({"type": "http.response.body", "body": payload, "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})
