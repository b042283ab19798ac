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
