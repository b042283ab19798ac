"""One overall deadline for the first byte of a request: `ROUTING_FIRST_BYTE_DEADLINE_SECONDS`.

Per-attempt timeouts multiply (timeout x retries x routes: an upstream that never answered
kept a client 80 s). The whole route loop of one request (holds, attempts, retries, fallback,
until the first content of a stream) runs under this deadline; when it passes, the loop is
cancelled (which voids the hold and records the failed request) and the client gets 504.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

from django.conf import settings

from routing.errors import GatewayError


async def first_byte(started: float, awaitable: Awaitable[Any]) -> Any:
    """Await `awaitable` until `started` + the deadline; 504 `deadline_exceeded` after."""
    seconds = settings.ROUTING_FIRST_BYTE_DEADLINE_SECONDS
    left = max(0.001, seconds - (time.monotonic() - started))
    try:
        async with asyncio.timeout(left) as scope:
            return await awaitable
    except TimeoutError as exc:
        if not scope.expired():
            raise
        raise GatewayError(
            504,
            f"No upstream answered within the gateway's deadline of {seconds:g} seconds.",
            type="api_error",
            code="deadline_exceeded",
        ) from exc
