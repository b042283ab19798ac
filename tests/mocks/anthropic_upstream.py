"""A real HTTP server on 127.0.0.1 speaking Anthropic's Messages wire format, with fault modes.

    upstream = MockAnthropic().start()   # base_url: upstream.base_url ("http://127.0.0.1:PORT")
    upstream.mode = "529"                # every request
    upstream.script = ["429", "ok"]      # the next requests, in order (then `mode`)
    # or per route: an upstream model named "fault-<mode>" always behaves so
    upstream.stop()

`echo_credentials` / `valid_keys`: see tests/mocks/server.py.
Modes: ok, 429, 500, 529 (overloaded_error), 401, 403, 400, cut (stream cut mid-way;
non-stream: connection dropped), stream_error (an `error` event mid-stream).
Tools are echoed: when the request offers tools (and tool_choice is not "none") and the last
user turn is not a tool_result, the reply is a `tool_use` of the first (or the forced) tool
with an input built from its schema; a tool_result is answered with "Tool said: <result>".
"""

from __future__ import annotations

import asyncio
import json
import uuid

from tests.mocks.server import MockServer as BaseMockServer

TEXT = "Hello from the Anthropic mock, one word at a time."
ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


class MockServer(BaseMockServer):
    """The base plus request reading and SSE helpers the Anthropic and Gemini mocks share."""

    async def _read(self, scope, receive) -> tuple[dict, dict]:
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        with self._lock:
            self.requests.append(
                {
                    "path": scope["path"],
                    "query": scope.get("query_string", b"").decode(),
                    "headers": headers,
                    "body": body,
                }
            )
        return body, headers

    async def _json(self, send, status: int, data, extra_headers=()) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), *extra_headers],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(data).encode()})

    async def _sse_start(self, send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )

    async def _sse(self, send, data: dict, event: str | None = None) -> None:
        head = f"event: {event}\n".encode() if event else b""
        payload = head + b"data: " + json.dumps(data).encode() + b"\n\n"
        await send({"type": "http.response.body", "body": payload, "more_body": True})

    async def _end(self, send) -> None:
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def sample_input(schema: dict | None) -> dict:
    """A plausible tool input from a JSON schema (strings "Paris", numbers 1, booleans true)."""
    out: dict = {}
    for name, prop in ((schema or {}).get("properties") or {}).items():
        kind = prop.get("type") if isinstance(prop, dict) else None
        kind = kind[0] if isinstance(kind, list) else kind
        kind = kind.lower() if isinstance(kind, str) else kind  # Gemini schemas: "STRING"
        out[name] = {"integer": 1, "number": 1, "boolean": True, "array": [], "object": {}}.get(
            kind, "Paris"
        )
    return out


class MockAnthropic(MockServer):
    def __init__(self, *, input_tokens: int = 21, output_tokens: int = 11):
        super().__init__()
        self._usage_defaults = (input_tokens, output_tokens)
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.cache_read_input_tokens = 0
        self.cache_creation_input_tokens = 0  # every cache write, 5-minute and 1-hour
        self.cache_write_1h_tokens = 0  # the 1-hour part of them (`cache_creation` object)
        self.count_tokens_value = 42
        self.call_tools = True

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        with self._lock:
            self.mode, self.script, self.requests = "ok", [], []
            self.cache_read_input_tokens = self.cache_creation_input_tokens = 0
            self.cache_write_1h_tokens = 0
            self.call_tools = True
            self.input_tokens, self.output_tokens = self._usage_defaults
            self.echo_credentials, self.valid_keys = False, None

    def _usage(self) -> dict:
        usage = {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "output_tokens": self.output_tokens,
        }
        if self.cache_creation_input_tokens:
            usage["cache_creation"] = {
                "ephemeral_5m_input_tokens": self.cache_creation_input_tokens
                - self.cache_write_1h_tokens,
                "ephemeral_1h_input_tokens": self.cache_write_1h_tokens,
            }
        return usage

    def _content(self, body: dict) -> tuple[list[dict], str]:
        """The reply's content blocks and stop_reason."""
        messages = body.get("messages") or []
        last = messages[-1] if messages else {}
        last_blocks = last.get("content") if isinstance(last.get("content"), list) else []
        results = [b for b in last_blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
        if results:
            content = results[0].get("content")
            if isinstance(content, list):
                content = "".join(str(b.get("text") or "") for b in content)
            return [{"type": "text", "text": f"Tool said: {content}"}], "end_turn"
        tools = body.get("tools") or []
        choice = body.get("tool_choice") or {"type": "auto"}
        if tools and choice.get("type") != "none" and self.call_tools:
            tool = tools[0]
            if choice.get("type") == "tool":
                tool = next((t for t in tools if t.get("name") == choice.get("name")), tool)
            block = {
                "type": "tool_use",
                "id": "toolu_" + uuid.uuid4().hex[:20],
                "name": tool.get("name"),
                "input": sample_input(tool.get("input_schema")),
            }
            return [{"type": "text", "text": "Let me check."}, block], "tool_use"
        text = TEXT
        fmt = (body.get("output_config") or {}).get("format") or {}
        if fmt.get("type") == "json_schema":  # structured outputs: JSON that fits the schema
            return [
                {"type": "text", "text": json.dumps(sample_input(fmt.get("schema")))}
            ], "end_turn"
        for stop in body.get("stop_sequences") or ():
            if stop in text:
                return [{"type": "text", "text": text.split(stop)[0]}], "stop_sequence"
        return [{"type": "text", "text": text}], "end_turn"

    async def app(self, scope, receive, send):
        if scope["type"] != "http":
            return
        body, headers = await self._read(scope, receive)
        path = scope["path"]
        # The key as `x-api-key`, or as a Bearer token (how the anthropic SDK 2.x sends it).
        if not headers.get("x-api-key") and not headers.get("authorization", "").startswith(
            "Bearer "
        ):
            return await self._json(send, 401, self._error(401, "x-api-key header is required"))
        if self.key_refused(headers):
            return await self._json(
                send, 401, self._error(401, self.error_text("invalid x-api-key", headers))
            )
        if path == "/v1/messages/count_tokens":
            return await self._json(send, 200, {"input_tokens": self.count_tokens_value})
        if path != "/v1/messages":
            return await self._json(send, 404, self._error(404, f"no route {path}"))
        if not body.get("max_tokens") or not body.get("model"):
            return await self._json(send, 400, self._error(400, "max_tokens: Field required"))
        mode = self._mode_for(str(body.get("model") or ""))
        if mode.isdigit():
            status = int(mode)
            extra = [(b"retry-after", b"0")] if status == 429 else []
            message = self.error_text(f"mock {status}", headers)
            return await self._json(send, status, self._error(status, message), extra)
        if body.get("stream"):
            return await self._stream(send, body, mode)
        if mode == "cut":
            raise RuntimeError("mock: connection dropped")
        content, stop = self._content(body)
        return await self._json(send, 200, self._message(body, content, stop))

    def _error(self, status: int, message: str) -> dict:
        kind = ERRORS.get(status, "not_found_error" if status == 404 else "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}

    def _message(self, body: dict, content: list[dict], stop: str) -> dict:
        stop_sequence = None
        if stop == "stop_sequence":
            stop_sequence = next(s for s in body["stop_sequences"] if s in TEXT)
        return {
            "id": "msg_" + uuid.uuid4().hex[:24],
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": content,
            "stop_reason": stop,
            "stop_sequence": stop_sequence,
            "usage": self._usage(),
        }

    async def _stream(self, send, body: dict, mode: str) -> None:
        content, stop = self._content(body)
        await self._sse_start(send)
        start = self._message(body, [], None)
        start["stop_reason"] = None
        start["usage"] = {**self._usage(), "output_tokens": 1}
        await self._sse(send, {"type": "message_start", "message": start}, "message_start")
        await self._sse(send, {"type": "ping"}, "ping")
        sent = 0
        for index, block in enumerate(content):
            if block["type"] == "text":
                opening = {"type": "text", "text": ""}
                pieces = [
                    {"type": "text_delta", "text": w if i == 0 else " " + w}
                    for i, w in enumerate(block["text"].split(" "))
                ]
            else:
                opening = {**block, "input": {}}
                raw = json.dumps(block["input"])
                pieces = [
                    {"type": "input_json_delta", "partial_json": raw[i : i + 7]}
                    for i in range(0, len(raw), 7)
                ]
            await self._sse(
                send,
                {"type": "content_block_start", "index": index, "content_block": opening},
                "content_block_start",
            )
            for piece in pieces:
                if mode == "cut" and sent == 3:
                    raise RuntimeError("mock: stream cut")
                if mode == "stream_error" and sent == 3:
                    error = self._error(529, "Overloaded")
                    await self._sse(send, error, "error")
                    return await self._end(send)
                await self._sse(
                    send,
                    {"type": "content_block_delta", "index": index, "delta": piece},
                    "content_block_delta",
                )
                sent += 1
                await asyncio.sleep(0)
            await self._sse(
                send, {"type": "content_block_stop", "index": index}, "content_block_stop"
            )
        stop_sequence = None
        if stop == "stop_sequence":
            stop_sequence = next(s for s in body["stop_sequences"] if s in TEXT)
        await self._sse(
            send,
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": stop_sequence},
                "usage": {"output_tokens": self.output_tokens},
            },
            "message_delta",
        )
        await self._sse(send, {"type": "message_stop"}, "message_stop")
        await self._end(send)
