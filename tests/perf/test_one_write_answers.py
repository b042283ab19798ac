"""config/server.py: a JSON answer's head and body leave in one write, a stream's head with
its first event, and a head is never lost when the body is empty.

Driven through uvicorn's real httptools protocol with a transport that records each write.
"""

from __future__ import annotations

import asyncio

import uvicorn
from uvicorn.server import ServerState

from config.server import http_protocol

REQUEST = b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _serve_once(app) -> list[bytes]:
    config = uvicorn.Config(app=app, lifespan="off", access_log=False, log_level="warning")
    config.load()
    protocol = http_protocol("httptools")(config=config, server_state=ServerState(), app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(REQUEST)
    for _ in range(50):
        await asyncio.sleep(0.01)
        if protocol.cycle is not None and protocol.cycle.response_complete:
            break
    protocol.connection_lost(None)
    return transport.writes


def test_a_json_answer_with_a_content_length_is_one_write():
    body = b'{"ok":true}'

    async def app(scope, receive, send):
        headers = [(b"content-type", b"application/json"), (b"content-length", b"11")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    writes = asyncio.run(_serve_once(app))
    assert len(writes) == 1
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(b"\r\n\r\n" + body)


def test_a_streamed_answer_sends_its_head_with_its_first_event_then_events_by_loop_turn():
    """The head leaves with the first event at once; the events sent in one turn of the
    event loop (one upstream read) leave together at the end of that turn, one write; an
    event sent in a later turn is not held for anything."""
    events = [b"data: 1\n\n", b"data: 2\n\n", b"data: 3\n\n", b"data: 4\n\n"]
    writes_after: list[int] = []
    transport_writes: list[bytes] = []

    async def app(scope, receive, send):
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": events[0], "more_body": True})
        writes_after.append(len(transport_writes))  # head + first event: out at once
        for event in events[1:3]:  # one turn of the loop
            await send({"type": "http.response.body", "body": event, "more_body": True})
        writes_after.append(len(transport_writes))  # gathered, not written yet
        await asyncio.sleep(0)
        writes_after.append(len(transport_writes))  # the turn ended: one write
        await send({"type": "http.response.body", "body": events[3], "more_body": True})
        await asyncio.sleep(0)
        writes_after.append(len(transport_writes))
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        writes_after.append(len(transport_writes))  # the end leaves at once

    async def serve():
        config = uvicorn.Config(app=app, lifespan="off", access_log=False, log_level="warning")
        config.load()
        protocol = http_protocol("httptools")(
            config=config, server_state=ServerState(), app_state={}
        )
        transport = RecordingTransport()
        transport.writes = transport_writes
        protocol.connection_made(transport)
        protocol.data_received(REQUEST)
        for _ in range(50):
            await asyncio.sleep(0.01)
            if protocol.cycle.response_complete:
                break
        protocol.connection_lost(None)

    asyncio.run(serve())
    assert writes_after == [1, 1, 2, 3, 4]
    head_and_first = transport_writes[0]
    assert head_and_first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert head_and_first.endswith(b"\r\n\r\n9\r\ndata: 1\n\n\r\n")  # chunked framing
    assert transport_writes[1] == b"9\r\ndata: 2\n\n\r\n9\r\ndata: 3\n\n\r\n"
    assert transport_writes[2] == b"9\r\ndata: 4\n\n\r\n"
    assert transport_writes[3] == b"0\r\n\r\n"


def test_events_gathered_in_a_turn_are_written_before_the_connection_closes():
    """A response on a connection that is not kept alive: uvicorn closes the transport in
    the same turn as the last events; they must leave first."""

    async def app(scope, receive, send):
        headers = [(b"content-type", b"text/event-stream"), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"data: 2\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    writes = asyncio.run(_serve_once(app))
    assert b"".join(writes).endswith(b"9\r\ndata: 2\n\n\r\n0\r\n\r\n")


def test_a_head_with_a_length_is_not_held_back_when_the_body_is_empty():
    async def app(scope, receive, send):
        headers = [(b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    writes = asyncio.run(_serve_once(app))
    assert len(writes) == 1 and writes[0].startswith(b"HTTP/1.1 204 No Content\r\n")
