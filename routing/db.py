"""The gateway's one hop from the event loop to the ORM.

Each request under Django's ASGI handler gets its own thread-sensitive context, i.e. a new
thread, so `sync_to_async` with the default `thread_sensitive=True` opened a new PostgreSQL
connection per request. The gateway's ORM calls are self-contained (each is one short
transaction that touches no thread-local state but the connection), so they run on the
loop's small, long-lived executor instead: its threads keep their connections (CONN_MAX_AGE),
and this module does per call what Django does per request (drop a broken or too old
connection), so a database restart heals by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections


def _run(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    close_old_connections()
    return fn(**kwargs)


_run_async = sync_to_async(_run, thread_sensitive=False)


async def db_call(fn: Callable[..., Any], /, **kwargs: Any) -> Any:
    return await _run_async(fn, kwargs)
