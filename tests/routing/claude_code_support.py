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
