"""What /v1/ refuses before it reads a request body (routing/asgi.py calls these).

An anonymous chunked 500 MB POST used to be spooled to disk before the 413, and /v1/ skipped
Django's Host validation. Now, in this order and from the headers alone:

1. a `Host` outside `ALLOWED_HOSTS` gets 400;
2. a `Content-Length` over `PROXY_MAX_BODY_BYTES` gets 413 at once;
3. a request that carries a body is authenticated from its `Authorization` / `x-api-key`
   header; an unknown, revoked or expired key (or a refused IP) is refused before one body
   byte is read;
4. the body is then read with a byte count and reading stops at the limit (413), chunked or not.

Every /v1/ response also carries `X-Content-Type-Options: nosniff`.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from routing.errors import GatewayError

log = logging.getLogger("routing.edge")

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BodyTooLarge(Exception):
    """The body grew past `PROXY_MAX_BODY_BYTES` while being read."""


def too_large() -> GatewayError:
    limit = settings.PROXY_MAX_BODY_BYTES
    return GatewayError(
        413, f"Request body is larger than {limit} bytes.", code="request_too_large"
    )


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return value.decode("latin-1")
    return None


def _allowed_hosts() -> list[str]:
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:  # Django's own rule for DEBUG (HttpRequest.get_host)
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    return hosts


def host_allowed(scope) -> bool:
    host = _header(scope, b"host")
    if host is None:
        server = scope.get("server")
        if not server:
            return True
        host = f"{server[0]}:{server[1]}"
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, _allowed_hosts())


def _content_length(scope) -> int | None:
    value = _header(scope, b"content-length")
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() else None


def carries_body(scope) -> bool:
    if scope.get("method") in BODY_METHODS:
        return True
    length = _content_length(scope)
    return bool(length) or _header(scope, b"transfer-encoding") is not None


async def early_refusal(scope) -> GatewayError | None:
    """The refusal a /v1/ request gets from its headers alone, or None to go on."""
    if not host_allowed(scope):
        return GatewayError(400, "Invalid Host header.", code="invalid_host")
    length = _content_length(scope)
    if length is not None and length > settings.PROXY_MAX_BODY_BYTES:
        return too_large()
    if not carries_body(scope):
        return None
    from routing.auth import SCOPE_KEY, authenticate_key, raw_key_of

    client = scope.get("client")
    try:
        scope[SCOPE_KEY] = await authenticate_key(
            raw=raw_key_of(_header(scope, b"authorization"), _header(scope, b"x-api-key")),
            remote_addr=client[0] if client else None,
        )
    except GatewayError as exc:
        return exc
    except Exception:  # noqa: BLE001 - e.g. the database is down: the view answers it (503)
        log.warning("key check from the headers failed; the view checks again", exc_info=True)
    return None


def with_nosniff(send):
    """`send` that adds `X-Content-Type-Options: nosniff` to every response start."""

    async def wrapped(message):
        if message.get("type") == "http.response.start":
            headers = list(message.get("headers") or [])
            if not any(k.lower() == b"x-content-type-options" for k, _v in headers):
                headers.append((b"x-content-type-options", b"nosniff"))
            message = {**message, "headers": headers}
        await send(message)

    return wrapped
