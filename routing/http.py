"""The gateway's upstream transport: one pooled aiohttp session per event loop (a session is
bound to the loop it first ran on: uvicorn has one; a Celery task running the engine under
`asyncio.run` has its own and closes it with `http_client_aclose`).

Why aiohttp rather than httpx: a profile put httpx at 22-36% of a worker's CPU per request
(httpcore's pool scan, anyio's current_task, cookies, request building). Providers see only
this module's surface (`UpstreamClient`, `UpstreamResponse`, `UpstreamStream`, and one
exception, `UpstreamTransportError`), never aiohttp itself.

Timeouts match the httpx client's: `timeout` bounds connecting and every wait for bytes (the
response's head, each chunk of a stream), never the whole exchange, so a long stream that
keeps sending is never cut.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import ssl
import urllib.request
import weakref
from collections.abc import AsyncIterator, Mapping

import aiohttp
from yarl import URL

USER_AGENT = "tokenforge-gateway/0.1"
DEFAULT_TIMEOUT = 60.0
# One upstream connection per open stream: thousands of slow streams per worker must never wait
# for a free connection (bounded by file descriptors, see docs/scaling.md, not by this pool).
MAX_CONNECTIONS = 20_000
KEEPALIVE_SECONDS = 30.0
HEAD_LIMIT = 16 * 1024


class UpstreamTransportError(Exception):
    """The upstream could not be reached, or the connection failed or timed out mid-way.
    `reason` names the failure (the underlying exception's class) for logs and records."""

    def __init__(self, reason: str, *, timeout: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.timeout = timeout


def _transport_error(exc: BaseException) -> UpstreamTransportError:
    return UpstreamTransportError(type(exc).__name__, timeout=isinstance(exc, asyncio.TimeoutError))


# aiohttp's ClientError covers refused/reset connections, bad URLs and broken payloads; its
# timeouts (connect and socket read) are asyncio.TimeoutError subclasses.
_FAILURES = (aiohttp.ClientError, asyncio.TimeoutError)


class UpstreamResponse:
    """A complete (non-streamed) answer. `headers` is case-insensitive."""

    __slots__ = ("status", "headers", "content")

    def __init__(self, status: int, headers: Mapping[str, str], content: bytes) -> None:
        self.status = status
        self.headers = headers
        self.content = content


class UpstreamStream:
    """An answer whose body is read as it arrives; the caller must `aclose()` it (a stream
    left before its end closes the upstream connection, so the upstream stops generating)."""

    __slots__ = ("status", "headers", "_response")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers = response.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes, chunk by chunk as they arrive."""
        read = self._response.content.readany
        try:
            while data := await read():
                yield data
        except _FAILURES as exc:
            raise _transport_error(exc) from exc

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except _FAILURES as exc:
            raise _transport_error(exc) from exc

    async def aclose(self) -> None:
        response = self._response
        if response.content.at_eof():
            response.release()  # the connection goes back to the pool
        else:
            response.close()  # left mid-way: drop the connection, the upstream sees it


def _ssl_context() -> ssl.SSLContext:
    """Certificates as httpx found them: SSL_CERT_FILE / SSL_CERT_DIR, else certifi's bundle."""
    cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    if cafile and os.path.isfile(cafile):
        return ssl.create_default_context(cafile=cafile)
    if capath and os.path.isdir(capath):
        return ssl.create_default_context(capath=capath)
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def _proxies_in_env() -> bool:
    """HTTP(S)_PROXY set: honour it as httpx did. Only then does the session read the
    environment (aiohttp's trust_env re-reads it, and ~/.netrc, on every request)."""
    proxies = urllib.request.getproxies()
    return bool(proxies.get("http") or proxies.get("https") or proxies.get("all"))


class UpstreamClient:
    """The pooled session, with the few calls the providers make. URLs and timeouts are
    parsed once per distinct value (the same few upstreams are called over and over)."""

    def __init__(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=MAX_CONNECTIONS,
            limit_per_host=0,
            keepalive_timeout=KEEPALIVE_SECONDS,
            ssl=_ssl_context(),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # upstreams' cookies are never sent back
            headers={"user-agent": USER_AGENT},
            timeout=self._timeout(DEFAULT_TIMEOUT),
            trust_env=_proxies_in_env(),
            # httpx (h11) took a head of up to 16 KiB, one long header included; aiohttp's
            # default refuses any header line over 8 KiB
            max_line_size=HEAD_LIMIT,
            max_field_size=HEAD_LIMIT,
        )
        self._urls: dict[str, URL] = {}
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    @property
    def is_closed(self) -> bool:
        return self._session.closed

    async def aclose(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> UpstreamClient:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()

    @staticmethod
    def _timeout(seconds: float) -> aiohttp.ClientTimeout:
        # connect: a free pooled connection or a new one, TLS included; sock_read: any wait
        # for bytes (the head, then each chunk). No total: a stream lasts as long as it sends.
        return aiohttp.ClientTimeout(total=None, connect=seconds, sock_read=seconds)

    def _parsed(self, url: str, timeout: float) -> tuple[URL, aiohttp.ClientTimeout]:
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) > 10_000:
                self._urls.clear()
            parsed = self._urls[url] = URL(url)
        found = self._timeouts.get(timeout)
        if found is None:
            found = self._timeouts[timeout] = self._timeout(timeout)
        return parsed, found

    async def _send(
        self, method: str, url: str, content: bytes | None, headers, timeout: float
    ) -> aiohttp.ClientResponse:
        parsed, client_timeout = self._parsed(url, timeout)
        try:
            return await self._session.request(
                method,
                parsed,
                data=content,
                headers=headers,
                timeout=client_timeout,
                allow_redirects=False,
            )
        except _FAILURES as exc:
            raise _transport_error(exc) from exc

    async def request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> UpstreamResponse:
        """Send and read the whole answer."""
        response = await self._send(method, url, content, headers, timeout)
        try:
            body = await response.read()
        except _FAILURES as exc:
            raise _transport_error(exc) from exc
        finally:
            response.release()
        return UpstreamResponse(response.status, response.headers, body)

    async def post(self, url: str, *, content: bytes, headers, timeout: float) -> UpstreamResponse:
        return await self.request("POST", url, content=content, headers=headers, timeout=timeout)

    async def get(self, url: str, *, headers=None, timeout: float) -> UpstreamResponse:
        return await self.request("GET", url, headers=headers, timeout=timeout)

    async def stream(
        self, url: str, *, content: bytes, headers, timeout: float, method: str = "POST"
    ) -> UpstreamStream:
        """Send; answer once the head arrived, the body to be read from the stream."""
        return UpstreamStream(await self._send(method, url, content, headers, timeout))


_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, UpstreamClient] = (
    weakref.WeakKeyDictionary()
)


def http_client() -> UpstreamClient:
    """This event loop's pooled upstream client."""
    loop = asyncio.get_running_loop()
    client = _CLIENTS.get(loop)
    if client is None or client.is_closed:
        client = _CLIENTS[loop] = UpstreamClient()
    return client


async def http_client_aclose() -> None:
    """Close this loop's client: for short-lived loops (a Celery task's `asyncio.run`)."""
    client = _CLIENTS.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


@atexit.register
def _forget_clients() -> None:
    """At exit, mark the sessions still open closed (their loops are over, their sockets go
    with the process), so aiohttp does not warn of each while the interpreter tears down."""
    for client in list(_CLIENTS.values()):
        connector = client._session.connector
        if connector is not None:
            connector._close()  # synchronous; the public close() wants a running loop
