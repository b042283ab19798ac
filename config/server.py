"""uvicorn's HTTP protocols with a bound on slow request headers (`make serve`, scripts/serve.py).

uvicorn has no header-read timeout: a client that sends its request headers one byte at a
time (slowloris) keeps a connection, and its file descriptor, for as long as it likes (50 such
connections stayed open 60 s in the attack run). These subclasses close a connection whose
request headers are not complete within `HEADER_READ_TIMEOUT_SECONDS` (default 10) of the
connection opening or of the request's first byte, and one whose headers grow past
`MAX_HEADER_BYTES` (64 KiB). The keep-alive idle time between requests stays uvicorn's own
`timeout_keep_alive`.
"""

from __future__ import annotations

import asyncio
import os

from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_READ_TIMEOUT_SECONDS = float(os.environ.get("HEADER_READ_TIMEOUT_SECONDS", "10"))
MAX_HEADER_BYTES = int(os.environ.get("MAX_HEADER_BYTES", str(64 * 1024)))


class _HeaderDeadline:
    """Mixed into a uvicorn protocol: arm on connect and on each request's first byte,
    disarm when the headers are complete."""

    _header_timer = None
    _header_bytes = 0
    _headers_done = False
    _cycle_at_arm = None

    def _arm(self) -> None:
        if self._header_timer is None:
            self._headers_done = False
            self._header_bytes = 0
            self._cycle_at_arm = getattr(self, "cycle", None)
            self._header_timer = self.loop.call_later(
                HEADER_READ_TIMEOUT_SECONDS, self._header_timeout
            )

    def _disarm(self) -> None:
        self._headers_done = True
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if not self._headers_done and not self.transport.is_closing():
            self.logger.debug("closing a connection whose request headers were too slow")
            self.transport.close()

    def _count_header_bytes(self, data: bytes) -> bool:
        """False (and the connection closed) when the headers grew past the limit."""
        if self._headers_done:
            return True
        self._header_bytes += len(data)
        if self._header_bytes > MAX_HEADER_BYTES:
            self._disarm()
            self.send_400_response("Request headers too large.")
            return False
        return True

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)


class _HeadWithBody:
    """A transport that keeps a response's head back until its first body message, so a JSON
    answer leaves in one `send`, and a stream's head with its first event (uvicorn writes the
    head and the body separately: two syscalls and often two packets per answer, ~6 % of a
    worker's CPU in the profile of issue 20). The proxy starts a stream's response only once
    its first event is in hand (routing.engine waits for it, to fall back before any byte),
    so holding the head delays nothing.

    After the first event, the events a stream sends in one turn of the event loop (those an
    upstream delivered in one read) leave together at the end of that turn (`coalesce`): one
    syscall instead of one per event (the writes were 10 % of a worker's CPU at 64 fast
    streams). An event sent alone still leaves in the turn it was sent."""

    __slots__ = ("_transport", "_head", "holding", "_pending")

    def __init__(self, transport) -> None:
        self._transport = transport
        self._head = b""
        self.holding = False
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self.holding:
            if not self._head:
                self._head = data
                return
            data = self._head + data
            self._head = b""
            self.holding = False
        if self._pending is not None:
            self._pending.append(data)
            return
        self._transport.write(data)

    def coalesce(self) -> None:
        """Gather the writes until the end of this turn of the loop into one."""
        if self._pending is None and not self.holding:
            self._pending = []
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self.holding = False
        head, self._head = self._head, b""
        pending, self._pending = self._pending, None
        data = head + b"".join(pending) if pending else head
        if data and not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name):
        return getattr(self._transport, name)


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
except ImportError:  # pragma: no cover - httptools is a dependency of `make serve`
    HttpToolsProtocol = None


if HttpToolsProtocol is not None:

    class _OneWriteCycle(RequestResponseCycle):
        async def send(self, message) -> None:
            transport = self.transport
            body = message["type"] == "http.response.body"
            if message["type"] == "http.response.start" and not self.response_started:
                transport.holding = True
            elif body and message.get("more_body", False):
                transport.coalesce()
            try:
                await super().send(message)
            finally:
                if body and (transport.holding or not message.get("more_body", False)):
                    transport.flush()

    class HeaderTimeoutHttpToolsProtocol(_HeaderDeadline, HttpToolsProtocol):
        def data_received(self, data: bytes) -> None:
            if self._count_header_bytes(data):
                super().data_received(data)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()
            cycle = self.cycle
            if cycle is not None and type(cycle) is RequestResponseCycle:
                cycle.__class__ = _OneWriteCycle
                cycle.transport = _HeadWithBody(cycle.transport)


class HeaderTimeoutH11Protocol(_HeaderDeadline, H11Protocol):
    """h11 bounds header size itself (h11_max_incomplete_event_size); this adds the time.
    The deadline is re-armed for each request after the keep-alive wait."""

    def data_received(self, data: bytes) -> None:
        if self._headers_done and self.cycle is not None and self.cycle.response_complete:
            self._arm()
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        if self._header_timer is not None and self.cycle is not self._cycle_at_arm:
            self._disarm()  # a new request cycle exists: its headers are complete


def http_protocol(kind: str = "httptools"):
    """The protocol class for uvicorn's `http=` option."""
    if kind == "httptools" and HttpToolsProtocol is not None:
        return HeaderTimeoutHttpToolsProtocol
    return HeaderTimeoutH11Protocol
