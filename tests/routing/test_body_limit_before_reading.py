"""Issue 19 (medium): the body-size limit is enforced while reading, after the key.

The gateway (uvicorn, PROXY_MAX_BODY_BYTES = 64 KiB in these tests) refuses an unknown key
from the headers before it reads one body byte, refuses a Content-Length over the limit at
once, and stops reading a chunked body as soon as it passes the limit. Raw sockets, so the
test controls exactly what is sent and when.
"""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlsplit

import pytest

from ledger.models import Hold, UsageRecord
from tests.routing.conftest import make_tenant, one_route

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 65536


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    return sock


def _head(path: str, key: str, extra: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    ).encode()


def _read_response(sock: socket.socket, timeout: float = 5.0) -> tuple[int, dict]:
    """Status and JSON body of one response (Content-Length or chunked)."""
    sock.settimeout(timeout)
    data = b""

    def more() -> bool:
        nonlocal data
        chunk = sock.recv(65536)
        data += chunk
        return bool(chunk)

    while b"\r\n\r\n" not in data and more():
        pass
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if b"content-length" in headers:
        length = int(headers[b"content-length"])
        while len(data) - len(head) - 4 < length and more():
            pass
        body = data[len(head) + 4 :][:length]
    else:  # chunked
        while not data.endswith(b"0\r\n\r\n") and more():
            pass
        rest, body = data[len(head) + 4 :], b""
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            body, rest = body + rest[:size], rest[size + 2 :]
    return status, json.loads(body or b"{}")


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_an_unknown_key_is_refused_before_the_body_is_read(gateway, path):
    sock = _connect(gateway.url)
    try:
        # A chunked upload announced, not one body byte sent: the answer still comes.
        sock.sendall(_head(path, "tf-" + "x" * 40, "Transfer-Encoding: chunked\r\n"))
        status, body = _read_response(sock)
    finally:
        sock.close()
    assert status == 401
    assert body["error"]["type"] in ("invalid_request_error", "authentication_error")


def test_a_content_length_over_the_limit_is_refused_at_once(gateway, upstream):
    one_route(upstream.base_url)
    t = make_tenant()
    sock = _connect(gateway.url)
    try:
        sock.sendall(_head("/v1/chat/completions", t.key, "Content-Length: 500000000\r\n"))
        status, body = _read_response(sock)
    finally:
        sock.close()
    assert status == 413 and body["error"]["code"] == "request_too_large"


def test_a_chunked_body_is_cut_off_at_the_limit_without_a_hold(gateway, upstream):
    one_route(upstream.base_url)
    t = make_tenant()
    sock = _connect(gateway.url)
    chunk = b"a" * 16384
    sent = 0
    refused_at = None
    try:
        sock.sendall(_head("/v1/chat/completions", t.key, "Transfer-Encoding: chunked\r\n"))
        sock.settimeout(0.05)
        while sent < 200 * 1024 * 1024:  # 200 MB offered; the server must stop us long before
            try:
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                break
            sent += len(chunk)
            try:
                peek = sock.recv(1, socket.MSG_PEEK)
            except (BlockingIOError, TimeoutError):
                continue
            if peek:
                refused_at = sent
                break
        status, body = _read_response(sock)
    finally:
        sock.close()
    assert status == 413 and body["error"]["code"] == "request_too_large"
    # Stopped near the limit (socket buffers absorb a little more), not after 200 MB.
    assert (refused_at or sent) < 16 * 1024 * 1024
    time.sleep(0.2)
    assert not Hold.objects.filter(org=t.org).exists()
    assert not UsageRecord.objects.filter(org=t.org).exists()
    assert len(upstream.requests) == 0


def test_a_body_within_the_limit_still_works(gateway, upstream):
    one_route(upstream.base_url)
    t = make_tenant()
    body = json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * (LIMIT // 2)}]}
    ).encode()
    sock = _connect(gateway.url)
    try:
        sock.sendall(
            _head("/v1/chat/completions", t.key, f"Content-Length: {len(body)}\r\n") + body
        )
        status, data = _read_response(sock, timeout=20)
    finally:
        sock.close()
    assert status == 200 and data["choices"]
