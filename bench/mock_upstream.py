"""A very fast mock upstream in OpenAI's wire format, for the benchmark only (127.0.0.1).

Raw asyncio protocol + httptools + uvloop, no framework, so that the mock is never the
bottleneck of a gateway benchmark (its capacity is measured by `bench/run.py` and reported).
Several processes share the port with SO_REUSEPORT (`--processes`).

    .venv/bin/python bench/mock_upstream.py --port 18001 [--processes 1] [--chunks 20] [--delay-ms 0]

- `POST /v1/chat/completions`: JSON with `usage`; with `"stream": true`, Server-Sent Events:
  `--chunks` content chunks `--delay-ms` apart, then a usage chunk and `data: [DONE]`.
  A model name ending in `-<CHUNKS>x<DELAY_MS>` (e.g. `mock-50x200`) overrides both per request,
  so one mock serves fast and slow streams whatever the gateway in front of it.
- `GET /v1/models`: one model list.
- Anything else: an OpenAI-shaped 404.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import time

import httptools

MODEL_SHAPE = re.compile(rb"-(\d{1,4})x(\d{1,6})$")
STREAM_TRUE = re.compile(rb'"stream"\s*:\s*true')
MODEL_FIELD = re.compile(rb'"model"\s*:\s*"([^"]{1,200})"')
CHUNK_TEXT = "tok "
PROMPT_TOKENS = 12


def _completion_body(model: str, chunks: int) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": CHUNK_TEXT * chunks},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": chunks,
                "total_tokens": PROMPT_TOKENS + chunks,
            },
        },
        separators=(",", ":"),
    ).encode()


def _sse(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _stream_parts(model: str, chunks: int) -> tuple[bytes, bytes, bytes]:
    """First event (role), one content event (repeated), and the tail (finish, usage, DONE)."""
    base = {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 0, "model": model}
    first = _sse(
        {
            **base,
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
            ],
        }
    )
    content = _sse(
        {
            **base,
            "choices": [{"index": 0, "delta": {"content": CHUNK_TEXT}, "finish_reason": None}],
        }
    )
    tail = (
        _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        + _sse(
            {
                **base,
                "choices": [],
                "usage": {
                    "prompt_tokens": PROMPT_TOKENS,
                    "completion_tokens": chunks,
                    "total_tokens": PROMPT_TOKENS + chunks,
                },
            }
        )
        + b"data: [DONE]\n\n"
    )
    return first, content, tail


def _response(status: bytes, body: bytes, content_type: bytes = b"application/json") -> bytes:
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\ncontent-type: "
        + content_type
        + b"\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\nconnection: keep-alive\r\n\r\n"
        + body
    )


MODELS_BODY = json.dumps(
    {
        "object": "list",
        "data": [{"id": "mock-fast", "object": "model", "created": 0, "owned_by": "mock"}],
    }
).encode()
NOT_FOUND_BODY = json.dumps(
    {"error": {"message": "not found", "type": "invalid_request_error", "code": "not_found"}}
).encode()
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n"
)


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class MockProtocol(asyncio.Protocol):
    """One keep-alive connection; requests are answered in order (no pipelining reordering)."""

    def __init__(self, config: argparse.Namespace, cache: dict) -> None:
        self.config = config
        self.cache = cache
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []
        self.queue: asyncio.Queue | None = None
        self.busy = False
        self.pending: list[tuple[bytes, bytes, bytes]] = []

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(_response(b"400 Bad Request", b"{}"))
            self.transport.close()

    def connection_lost(self, exc) -> None:
        self.transport = None

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        self.pending.append((method, self.url, b"".join(self.body)))
        if not self.busy:
            self._drain()

    def _drain(self) -> None:
        while self.pending and self.transport is not None:
            method, url, body = self.pending.pop(0)
            path = url.split(b"?", 1)[0]
            if method == b"POST" and path.endswith(b"/chat/completions"):
                match = MODEL_FIELD.search(body)
                model = match.group(1) if match else b"mock-fast"
                chunks, delay_ms = self.config.chunks, self.config.delay_ms
                shape = MODEL_SHAPE.search(model)
                if shape:
                    chunks, delay_ms = int(shape.group(1)), int(shape.group(2))
                if STREAM_TRUE.search(body):
                    self.busy = True
                    asyncio.ensure_future(self._stream(model.decode(), chunks, delay_ms))
                    return
                key = (model, chunks)
                response = self.cache.get(key)
                if response is None:
                    response = _response(b"200 OK", _completion_body(model.decode(), chunks))
                    self.cache[key] = response
                self.transport.write(response)
            elif method == b"GET" and path.endswith(b"/models"):
                self.transport.write(_response(b"200 OK", MODELS_BODY))
            else:
                self.transport.write(_response(b"404 Not Found", NOT_FOUND_BODY))

    async def _stream(self, model: str, chunks: int, delay_ms: int) -> None:
        key = ("stream", model, chunks)
        parts = self.cache.get(key)
        if parts is None:
            first, content, tail = _stream_parts(model, chunks)
            parts = (
                STREAM_HEAD + _chunked(first),
                _chunked(content),
                _chunked(tail) + b"0\r\n\r\n",
            )
            self.cache[key] = parts
        head, content, tail = parts
        try:
            if self.transport is None:
                return
            self.transport.write(head)
            delay = delay_ms / 1000
            for _ in range(chunks):
                if delay:
                    await asyncio.sleep(delay)
                if self.transport is None:
                    return
                self.transport.write(content)
            if self.transport is None:
                return
            self.transport.write(tail)
        finally:
            self.busy = False
        self._drain()


def _serve(config: argparse.Namespace) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is in the project's venv
        pass
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((config.host, config.port))
    sock.listen(4096)
    cache: dict = {}
    server = loop.run_until_complete(
        loop.create_server(lambda: MockProtocol(config, cache), sock=sock, backlog=4096)
    )
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.add_signal_handler(signal.SIGINT, loop.stop)
    try:
        loop.run_forever()
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18001)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--delay-ms", type=int, default=0)
    config = parser.parse_args()
    if config.host != "127.0.0.1":
        parser.error("the mock listens on 127.0.0.1 only")
    children = []
    for _ in range(config.processes - 1):
        pid = os.fork()
        if pid == 0:
            _serve(config)
            os._exit(0)
        children.append(pid)
    try:
        _serve(config)
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


if __name__ == "__main__":
    main()
