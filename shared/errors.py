"""One JSON error shape, `{code, message}`, for every failure a client can see.

Error codes are part of the API contract: clients and proxies branch on them, so
each is spelled once here or at its single raise site and never renamed.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = structlog.get_logger("authgate.errors")


class ApiError(Exception):
    """An expected failure with a stable code; rendered as `{code, message}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


class StoreUnavailable(Exception):
    """The backing store (MongoDB or Redis) did not answer in time."""


def error_response(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, object] | None = None,
) -> JSONResponse:
    body: dict[str, object] = {"code": code, "message": message, **(extra or {})}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.headers, exc.extra)


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), exc.headers)


async def store_unavailable_handler(request: Request, exc: Exception) -> Response:
    log.warning("store_unavailable", path=request.url.path, error=type(exc).__name__)
    return error_response(
        503, "store_unavailable", "The data store is unavailable; retry shortly.", {"Retry-After": "2"}
    )


async def internal_error_handler(request: Request, exc: Exception) -> Response:
    """Last resort: log the exception, answer a generic 500 with the request id."""
    request_id = request.scope.get("state", {}).get("request_id", "")
    log.exception("unhandled_error", path=request.url.path)
    return error_response(
        500, "internal_error", "Internal error.", {"X-Request-Id": request_id}, {"request_id": request_id}
    )


EXCEPTION_HANDLERS = {
    ApiError: api_error_handler,
    HTTPException: http_exception_handler,
    StoreUnavailable: store_unavailable_handler,
    Exception: internal_error_handler,
}
