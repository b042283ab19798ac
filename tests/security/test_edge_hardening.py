"""Issue 19 (low): the edge, under the production server (`scripts/serve.py`, httptools with
the header deadline of config/server.py, production settings).

- /v1/ checks ALLOWED_HOSTS (400 for a bad Host), and every response says `nosniff`;
- 50 connections that send their headers slowly are closed within a few seconds;
- X-Forwarded-For is trusted only from the proxies in FORWARDED_ALLOW_IPS (empty by default).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.reliability.conftest import Server, free_port, test_database_url
from tests.routing.conftest import make_tenant, one_route

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
HEADER_TIMEOUT = 2


def start_serve(extra_env: dict[str, str] | None = None) -> Server:
    """`scripts/serve.py` (what `make serve` runs) with production settings, one worker."""
    from django.conf import settings

    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DATABASE_URL": test_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": "edge-test-" + "s" * 50,
        "FIELD_ENCRYPTION_KEY": settings.FIELD_ENCRYPTION_KEY,
        "ALLOWED_HOSTS": "127.0.0.1,gateway.example",
        "EMAIL_URL": "smtp://127.0.0.1:1025",
        "SECURE_SSL_REDIRECT": "false",
        "ROUTING_TABLE_CACHE_SECONDS": "0",
        "HEADER_READ_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "LOG_LEVEL": "WARNING",
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        **(extra_env or {}),
    }
    if "FORWARDED_ALLOW_IPS" not in (extra_env or {}):
        env.pop("FORWARDED_ALLOW_IPS", None)  # the default: trust no proxy
    process = subprocess.Popen(
        [sys.executable, "scripts/serve.py", "--port", str(port), "--workers", "1"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 40
    while True:
        try:
            if httpx.get(url + "/v1/models", timeout=2).status_code:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            raise RuntimeError("scripts/serve.py did not start")
        time.sleep(0.2)
    return Server(url=url, process=process, env=env)


@pytest.fixture
def serve():
    server = start_serve()
    yield server
    server.stop()


def test_v1_refuses_a_host_outside_allowed_hosts_and_says_nosniff(serve, upstream):
    one_route(upstream.base_url)
    t = make_tenant()
    auth = {"authorization": f"Bearer {t.key}"}
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    bad = httpx.post(
        serve.url + "/v1/chat/completions", json=body, headers={**auth, "host": "evil.example"}
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_host"
    assert upstream.requests == []
    ok = httpx.post(
        serve.url + "/v1/chat/completions",
        json=body,
        headers={**auth, "host": "gateway.example"},
        timeout=30,
    )
    assert ok.status_code == 200
    for response in (
        bad,
        ok,
        httpx.get(serve.url + "/v1/models", headers=auth),
        httpx.get(serve.url + "/v1/models"),  # 401
        httpx.post(serve.url + "/v1/messages", json={}),  # early 401, Anthropic-shaped
        httpx.get(serve.url + "/v1/nope", headers=auth),  # 404
    ):
        assert response.headers["x-content-type-options"] == "nosniff", response.request.url
        assert response.headers["x-request-id"]


def test_fifty_slow_header_connections_are_closed_within_seconds(serve):
    host, port = "127.0.0.1", int(serve.url.rsplit(":", 1)[1])
    sockets = []
    for _ in range(50):
        sock = socket.create_connection((host, port), timeout=5)
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sockets.append(sock)
    started = time.monotonic()
    open_ = set(range(50))
    while open_ and time.monotonic() - started < HEADER_TIMEOUT + 6:
        for i in list(open_):
            try:
                sockets[i].sendall(b"X-Slow: a\r\n")  # one header line at a time, never done
            except OSError:
                open_.discard(i)
                continue
            sockets[i].settimeout(0.01)
            try:
                if sockets[i].recv(1024) == b"":
                    open_.discard(i)
            except (TimeoutError, BlockingIOError):
                pass
            except OSError:
                open_.discard(i)
        time.sleep(0.3)
    elapsed = time.monotonic() - started
    for sock in sockets:
        sock.close()
    assert not open_, f"{len(open_)} slow connections still open after {elapsed:.1f}s"
    assert elapsed < HEADER_TIMEOUT + 4
    # The server still answers.
    assert httpx.get(serve.url + "/v1/models").status_code == 401


def _allowlisted_request(server: Server, key: str, forwarded_for: str) -> int:
    return httpx.get(
        server.url + "/v1/models",
        headers={"authorization": f"Bearer {key}", "x-forwarded-for": forwarded_for},
    ).status_code


def test_forwarded_for_is_ignored_unless_the_peer_is_a_listed_proxy(upstream):
    one_route(upstream.base_url)
    t = make_tenant(ip_allowlist=["10.0.0.0/8"])
    server = start_serve()
    try:
        # Default (FORWARDED_ALLOW_IPS empty): the header cannot pick the address.
        assert _allowlisted_request(server, t.key, "10.1.2.3") == 403
    finally:
        server.stop()
    server = start_serve({"FORWARDED_ALLOW_IPS": "127.0.0.1"})
    try:
        # Our proxy (127.0.0.1) is listed: the client address it forwards is the one checked.
        assert _allowlisted_request(server, t.key, "10.1.2.3") == 200
        assert _allowlisted_request(server, t.key, "192.0.2.7") == 403
    finally:
        server.stop()
