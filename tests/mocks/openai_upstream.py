"""A real HTTP server on 127.0.0.1 speaking OpenAI's wire format, with fault modes.

    upstream = MockOpenAI().start()      # base_url: upstream.base_url ("http://127.0.0.1:PORT/v1")
    upstream.mode = "500"                # every request
    upstream.script = ["429", "ok"]      # the next requests, in order (then `mode`)
    # or per route: an upstream model named "fault-<mode>" always behaves so
    upstream.stop()

Modes: ok, hang, 429, 500, 503, 401, 403, 400, insufficient_quota, malformed, cut (stream
cut mid-way; non-stream: connection dropped), no_usage, slow (a long slow stream),
stream_error (an error event after three chunks).
`echo_credentials = True`: error texts echo the caller's key and Authorization header;
`valid_keys = {...}`: any other key gets 401 invalid_api_key (probes included).
A server that refuses connections: `dead_base_url()`.

`/v1/responses` is served too (OpenAI's Responses API, streamed and not), for upstreams
flagged `responses: true`; a hosted `web_search` tool answers with a `web_search_call` item.
With `echo_tools = True` (off by default) offered function tools are called, as the Anthropic
and Gemini mocks do; a `json_schema` format is answered with JSON that fits the schema.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid

from tests.mocks.anthropic_upstream import sample_input
from tests.mocks.server import MockServer

TEXT = "Hello from the mock upstream, one word at a time."


def dead_base_url() -> str:
    """A URL nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


class MockOpenAI(MockServer):
    def __init__(self, *, mode: str = "ok", prompt_tokens: int = 12, completion_tokens: int = 9):
        super().__init__(mode=mode)
        self._usage_defaults = (prompt_tokens, completion_tokens)
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.cached_tokens = 0
        self.usage_extra: dict = {}
        self.answer_headers: list[tuple[bytes, bytes]] = []  # e.g. a relay's cost header
        self.hang_seconds = 30.0
        self.slow_chunks = 400
        self.slow_delay = 0.02
        self.disconnects = 0
        self.chunks_sent = 0
        self.echo_tools = False

    # --- lifecycle ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self) -> None:
        with self._lock:
            self.mode, self.script, self.requests = "ok", [], []
            self.disconnects = self.chunks_sent = 0
            self.cached_tokens = 0
            self.echo_tools = False
            self.usage_extra = {}
            self.answer_headers = []
            # every knob a test may turn goes back to its default: fixtures share the server
            self.prompt_tokens, self.completion_tokens = self._usage_defaults
            self.hang_seconds, self.slow_chunks, self.slow_delay = 30.0, 400, 0.02
            self.echo_credentials, self.valid_keys = False, None

    def _mode_for(self, body: dict) -> str:
        return super()._mode_for(str(body.get("model") or ""))

    # --- ASGI ----------------------------------------------------------------------------------
    async def app(self, scope, receive, send):
        if scope["type"] != "http":
            return
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
        path = scope["path"]
        with self._lock:
            self.requests.append({"path": path, "headers": headers, "body": body})
        if self.key_refused(headers):
            return await self._json(
                send,
                401,
                {
                    "error": {
                        "message": self.error_text("mock 401", headers),
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                        "param": None,
                    }
                },
            )
        if scope["method"] == "GET" and path.endswith("/models"):
            return await self._json(
                send, 200, {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]}
            )
        mode = self._mode_for(body)
        if mode == "hang":
            await asyncio.sleep(self.hang_seconds)
            return await self._json(send, 200, self._completion(body))
        if mode in ("429", "500", "503", "401", "403", "400"):
            status = int(mode)
            kinds = {
                429: ("rate_limit_exceeded", "requests"),
                401: ("invalid_api_key", "invalid_request_error"),
                403: ("forbidden", "invalid_request_error"),
                400: ("invalid_value", "invalid_request_error"),
            }
            code, kind = kinds.get(status, ("server_error", "server_error"))
            extra = [(b"retry-after", b"0")] if status == 429 else []
            return await self._json(
                send,
                status,
                {
                    "error": {
                        "message": self.error_text(f"mock {status}", headers),
                        "type": kind,
                        "code": code,
                        "param": None,
                    }
                },
                extra,
            )
        if mode == "insufficient_quota":
            return await self._json(
                send,
                429,
                {
                    "error": {
                        "message": self.error_text("You exceeded your current quota.", headers),
                        "type": "insufficient_quota",
                        "code": "insufficient_quota",
                        "param": None,
                    }
                },
            )
        if mode == "malformed":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            return await send(
                {"type": "http.response.body", "body": b'{"id": "x", "choices": [tru'}
            )
        if path.endswith("/embeddings"):
            return await self._json(send, 200, self._embeddings(body))
        if path.endswith("/responses"):
            if body.get("stream"):
                return await self._responses_stream(send, body, mode)
            if mode == "cut":
                raise RuntimeError("mock: connection dropped")
            return await self._json(send, 200, self._response(body, self._output(body)))
        if body.get("stream"):
            return await self._stream(receive, send, body, mode, headers)
        if mode == "cut":
            raise RuntimeError("mock: connection dropped")
        return await self._json(
            send, 200, self._completion(body, usage=mode != "no_usage"), self.answer_headers
        )

    async def _json(self, send, status: int, data: dict, extra_headers=()) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), *extra_headers],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(data).encode()})

    def _usage(self) -> dict:
        usage = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        if self.cached_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        usage.update(self.usage_extra)  # e.g. completion_tokens_details, a relay's cost
        return usage

    def _reply(self, body: dict) -> tuple[str, dict | None]:
        """The chat reply's text, or a tool call when tools are echoed."""
        messages = body.get("messages") or []
        last = messages[-1] if messages else {}
        if self.echo_tools and last.get("role") == "tool":
            return f"Tool said: {last.get('content')}", None
        tools = [t for t in body.get("tools") or () if t.get("type") == "function"]
        if self.echo_tools and tools and body.get("tool_choice") != "none":
            fn = tools[0]["function"]
            call = {
                "id": "call_" + uuid.uuid4().hex[:12],
                "type": "function",
                "function": {
                    "name": fn["name"],
                    "arguments": json.dumps(sample_input(fn.get("parameters"))),
                },
            }
            return "", call
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            return json.dumps(sample_input((fmt.get("json_schema") or {}).get("schema"))), None
        return TEXT, None

    def _completion(self, body: dict, usage: bool = True) -> dict:
        text, call = self._reply(body)
        message = {"role": "assistant", "content": text or None}
        if call:
            message["tool_calls"] = [call]
        data = {
            "id": "chatcmpl-" + uuid.uuid4().hex[:12],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "mock"),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if call else "stop",
                }
            ],
        }
        if usage:
            data["usage"] = self._usage()
        return data

    # --- /v1/responses ------------------------------------------------------------------------
    def _output(self, body: dict) -> list[dict]:
        items = body.get("input")
        items = (
            [{"type": "message", "role": "user", "content": items}]
            if isinstance(items, str)
            else list(items or [])
        )
        tools = body.get("tools") or []
        output: list[dict] = []
        if any(t.get("type") == "web_search" for t in tools):
            output.append(
                {
                    "id": "ws_" + uuid.uuid4().hex[:12],
                    "type": "web_search_call",
                    "status": "completed",
                    "action": {"type": "search", "query": "mock query"},
                }
            )
        last = items[-1] if items else {}
        functions = [t for t in tools if t.get("type") == "function"]
        fmt = (body.get("text") or {}).get("format") or {}
        if last.get("type") == "function_call_output":
            text = f"Tool said: {last.get('output')}"
        elif self.echo_tools and functions and body.get("tool_choice") != "none":
            output.append(
                {
                    "id": "fc_" + uuid.uuid4().hex[:12],
                    "type": "function_call",
                    "status": "completed",
                    "call_id": "call_" + uuid.uuid4().hex[:12],
                    "name": functions[0]["name"],
                    "arguments": json.dumps(sample_input(functions[0].get("parameters"))),
                }
            )
            return output
        elif fmt.get("type") == "json_schema":
            text = json.dumps(sample_input(fmt.get("schema")))
        else:
            text = TEXT
        output.append(
            {
                "id": "msg_" + uuid.uuid4().hex[:12],
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        )
        return output

    def _response(self, body: dict, output: list[dict], status: str = "completed") -> dict:
        return {
            "id": "resp_mock" + uuid.uuid4().hex[:12],
            "object": "response",
            "created_at": int(time.time()),
            "status": status,
            "model": body.get("model"),
            "output": output,
            "usage": {
                "input_tokens": self.prompt_tokens,
                "input_tokens_details": {"cached_tokens": self.cached_tokens},
                "output_tokens": self.completion_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": self.prompt_tokens + self.completion_tokens,
            },
        }

    async def _responses_stream(self, send, body: dict, mode: str) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        seq = 0

        async def emit(kind: str, **fields) -> None:
            nonlocal seq
            data = {"type": kind, "sequence_number": seq, **fields}
            seq += 1
            payload = f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()
            await send({"type": "http.response.body", "body": payload, "more_body": True})

        output = self._output(body)
        final = self._response(body, output)
        await emit("response.created", response={**final, "status": "in_progress", "output": []})
        await emit(
            "response.in_progress", response={**final, "status": "in_progress", "output": []}
        )
        sent = 0
        for index, item in enumerate(output):
            if item["type"] != "message":
                await emit("response.output_item.added", output_index=index, item=item)
                if item["type"] == "function_call":
                    await emit(
                        "response.function_call_arguments.delta",
                        item_id=item["id"],
                        output_index=index,
                        delta=item["arguments"],
                    )
                    await emit(
                        "response.function_call_arguments.done",
                        item_id=item["id"],
                        output_index=index,
                        arguments=item["arguments"],
                    )
                await emit("response.output_item.done", output_index=index, item=item)
                continue
            text = item["content"][0]["text"]
            part = {"type": "output_text", "text": "", "annotations": []}
            common = {"item_id": item["id"], "output_index": index, "content_index": 0}
            await emit(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "content": []},
            )
            await emit("response.content_part.added", **common, part=part)
            for i, word in enumerate(text.split(" ")):
                if mode == "cut" and sent == 3:
                    raise RuntimeError("mock: stream cut")
                await emit(
                    "response.output_text.delta", **common, delta=word if i == 0 else " " + word
                )
                sent += 1
                await asyncio.sleep(0)
            await emit("response.output_text.done", **common, text=text)
            await emit("response.content_part.done", **common, part={**part, "text": text})
            await emit("response.output_item.done", output_index=index, item=item)
        await emit("response.completed", response=final)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _embeddings(self, body: dict) -> dict:
        items = body.get("input")
        items = items if isinstance(items, list) else [items]
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
                for i, _ in enumerate(items)
            ],
            "model": body.get("model"),
            "usage": {"prompt_tokens": self.prompt_tokens, "total_tokens": self.prompt_tokens},
        }

    async def _stream(self, receive, send, body: dict, mode: str, headers=None) -> None:
        disconnected = asyncio.Event()

        async def watch():
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected.set()
                    return

        watcher = asyncio.create_task(watch())
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream"), *self.answer_headers],
            }
        )
        cid, created, model = (
            "chatcmpl-" + uuid.uuid4().hex[:12],
            int(time.time()),
            body.get("model"),
        )

        def chunk(delta, finish=None):
            return {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        async def emit(data) -> bool:
            if disconnected.is_set():
                return False
            payload = data if isinstance(data, bytes) else json.dumps(data).encode()
            await send(
                {
                    "type": "http.response.body",
                    "body": b"data: " + payload + b"\n\n",
                    "more_body": True,
                }
            )
            self.chunks_sent += 1
            return True

        text, call = self._reply(body)
        try:
            await emit(chunk({"role": "assistant", "content": ""}))
            if call:
                await emit(chunk({"tool_calls": [{"index": 0, **call}]}))
                await emit(chunk({}, "tool_calls"))
                await emit(
                    {
                        "id": cid,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": self._usage(),
                    }
                )
                await emit(b"[DONE]")
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            words = text.split(" ")
            if mode == "slow":
                words = [f"w{i}" for i in range(self.slow_chunks)]
            for i, word in enumerate(words):
                if mode == "cut" and i == 3:
                    raise RuntimeError("mock: stream cut")
                if mode == "stream_error" and i == 3:
                    message = self.error_text("mock stream error", headers or {})
                    await emit({"error": {"message": message, "type": "server_error"}})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
                if not await emit(chunk({"content": word if i == 0 else " " + word})):
                    self.disconnects += 1
                    return
                if mode == "slow":
                    await asyncio.sleep(self.slow_delay)
                    if disconnected.is_set():
                        self.disconnects += 1
                        return
            await emit(chunk({}, "stop"))
            include = (body.get("stream_options") or {}).get("include_usage")
            if include and mode != "no_usage":
                await emit(
                    {
                        "id": cid,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": self._usage(),
                    }
                )
            await emit(b"[DONE]")
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
