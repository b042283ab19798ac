"""A real HTTP server on 127.0.0.1 speaking Gemini's wire format, with fault modes.

    upstream = MockGemini().start()      # base_url: upstream.base_url ("http://127.0.0.1:PORT")
    upstream.mode = "429"; upstream.script = ["500", "ok"]; model "fault-<mode>"

Serves `/v1beta/models/{model}:generateContent` and `:streamGenerateContent?alt=sse`; the key
must come in `x-goog-api-key`. Modes: ok, 429 (RESOURCE_EXHAUSTED), 500, 503, 401, 403,
badkey (400 "API key not valid"), 400, cut. Tools are echoed as a `functionCall` of the first
declared (or allowed) function; a `functionResponse` is answered with "Tool said: <response>".
"""

from __future__ import annotations

import asyncio
import json

from tests.mocks.anthropic_upstream import MockServer, sample_input

TEXT = "Hello from the Gemini mock, one word at a time."
STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class MockGemini(MockServer):
    def __init__(self, *, prompt_tokens: int = 17, output_tokens: int = 8):
        super().__init__()
        self.prompt_tokens = prompt_tokens
        self.output_tokens = output_tokens
        self.cached_tokens = 0
        self.thoughts_tokens = 0
        self.call_tools = True
        self.tool_use_tokens = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        with self._lock:
            self.mode, self.script, self.requests = "ok", [], []
            self.call_tools = True
            self.cached_tokens = self.thoughts_tokens = self.tool_use_tokens = 0

    def _error(self, status: int, message: str) -> dict:
        return {
            "error": {"code": status, "message": message, "status": STATUSES.get(status, "UNKNOWN")}
        }

    def _usage(self, final: bool = True) -> dict:
        usage = {"promptTokenCount": self.prompt_tokens}
        if final:
            usage["candidatesTokenCount"] = self.output_tokens
            if self.cached_tokens:
                usage["cachedContentTokenCount"] = self.cached_tokens
            if self.thoughts_tokens:
                usage["thoughtsTokenCount"] = self.thoughts_tokens
            if self.tool_use_tokens:
                usage["toolUsePromptTokenCount"] = self.tool_use_tokens
        usage["totalTokenCount"] = sum(
            v for k, v in usage.items() if k != "cachedContentTokenCount"
        )
        return usage

    def _parts(self, body: dict) -> list[dict]:
        contents = body.get("contents") or []
        last = contents[-1] if contents else {}
        answers = [p for p in last.get("parts") or () if "functionResponse" in p]
        if answers:
            response = answers[0]["functionResponse"].get("response") or {}
            value = response.get("content", response)
            return [
                {"text": f"Tool said: {value if isinstance(value, str) else json.dumps(value)}"}
            ]
        declarations = [
            d for t in body.get("tools") or () for d in t.get("functionDeclarations", ())
        ]
        config = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
        if declarations and config.get("mode") != "NONE" and self.call_tools:
            allowed = config.get("allowedFunctionNames") or []
            chosen = next((d for d in declarations if d["name"] in allowed), declarations[0])
            call = {"name": chosen["name"], "args": sample_input(chosen.get("parameters"))}
            return [{"text": "Let me check."}, {"functionCall": call}]
        schema = (body.get("generationConfig") or {}).get("responseSchema")
        if isinstance(schema, dict):  # structured output: JSON that fits the schema
            return [{"text": json.dumps(sample_input(schema))}]
        return [{"text": TEXT}]

    async def app(self, scope, receive, send):
        if scope["type"] != "http":
            return
        body, headers = await self._read(scope, receive)
        path = scope["path"]
        if not path.startswith("/v1beta/models/") or ":" not in path:
            return await self._json(send, 404, self._error(404, f"no route {path}"))
        model, _, method = path[len("/v1beta/models/") :].partition(":")
        if not headers.get("x-goog-api-key"):
            return await self._json(
                send, 403, self._error(403, "Method doesn't allow unregistered callers")
            )
        if not isinstance(body.get("contents"), list) or not body["contents"]:
            return await self._json(send, 400, self._error(400, "contents is not specified"))
        mode = self._mode_for(model)
        if mode == "badkey":
            message = "API key not valid. Please pass a valid API key."
            return await self._json(send, 400, self._error(400, message))
        if mode.isdigit():
            status = int(mode)
            return await self._json(send, status, self._error(status, f"mock {status}"))
        parts = self._parts(body)
        finish = "STOP"
        if method == "streamGenerateContent":
            return await self._stream(send, parts, finish, mode, model)
        if method != "generateContent":
            return await self._json(send, 404, self._error(404, f"no method {method}"))
        if mode == "cut":
            raise RuntimeError("mock: connection dropped")
        return await self._json(send, 200, self._response(parts, finish, model, self._usage()))

    def _response(self, parts, finish, model, usage) -> dict:
        candidate = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": model,
            "responseId": "resp-mock",
        }

    async def _stream(self, send, parts, finish, mode, model) -> None:
        await self._sse_start(send)
        pieces: list[dict] = []
        for part in parts:
            if "text" in part:
                words = part["text"].split(" ")
                pieces += [{"text": w if i == 0 else " " + w} for i, w in enumerate(words)]
            else:
                pieces.append(part)
        for i, piece in enumerate(pieces):
            if mode == "cut" and i == 3:
                raise RuntimeError("mock: stream cut")
            last = i == len(pieces) - 1
            data = self._response([piece], finish if last else None, model, self._usage(final=last))
            await self._sse(send, data)
            await asyncio.sleep(0)
        await self._end(send)
