"""One pooled `httpx.AsyncClient` per process (per event loop, since a client is bound to
the loop it first ran on: uvicorn has one; a Celery task calling the engine may start its own)."""

from __future__ import annotations

import asyncio
import weakref

import httpx

_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)

# One upstream connection per open stream: thousands of slow streams per worker must never wait
# for a free connection (bounded by file descriptors, see docs/scaling.md, not by this pool).
LIMITS = httpx.Limits(max_connections=20_000, max_keepalive_connections=512, keepalive_expiry=30)


def http_client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _CLIENTS.get(loop)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(
            limits=LIMITS,
            timeout=httpx.Timeout(60.0, connect=5.0),
            follow_redirects=False,
            headers={"user-agent": "tokenforge-gateway/0.1"},
        )
        _CLIENTS[loop] = client
    return client


async def http_client_aclose() -> None:
    """Close this loop's client: for short-lived loops (a Celery task's `asyncio.run`)."""
    client = _CLIENTS.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()
