"""The gateway's error type; each client surface renders it in its own shape."""

from __future__ import annotations

import orjson
from django.http import HttpResponse


class GatewayError(Exception):
    """An answer that is not a success: status, OpenAI-style type/code/param, extra headers."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",  # noqa: A002 - OpenAI's field name
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}


def openai_error_body(err: GatewayError) -> dict:
    return {
        "error": {"message": err.message, "type": err.type, "code": err.code, "param": err.param}
    }


def json_bytes_response(
    content: bytes, *, status: int = 200, headers: dict[str, str] | None = None
) -> HttpResponse:
    """A JSON answer with its Content-Length, so the server sends it without chunked framing
    (and config/server.py in one write with its head)."""
    response = HttpResponse(content, status=status, content_type="application/json")
    response.headers["Content-Length"] = str(len(content))
    if headers:
        for name, value in headers.items():
            response.headers[name] = value
    return response


def openai_error_response(err: GatewayError) -> HttpResponse:
    return json_bytes_response(
        orjson.dumps(openai_error_body(err)), status=err.status, headers=err.headers
    )


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, code=code)
