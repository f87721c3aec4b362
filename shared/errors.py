"""One JSON error shape, `{code, message}`, for every failure a client can see.

Error codes are part of the API contract: clients and proxies branch on them, so
each is spelled once, in `ErrorCode`, and never renamed (add, never rename).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

import structlog
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("authgate.errors")


class ErrorCode(StrEnum):
    """Every `code` either service answers with; the values are the contract."""

    BAD_REQUEST = "bad_request"
    INVALID_JSON = "invalid_json"
    INVALID_INPUT = "invalid_input"
    INVALID_REQUEST = "invalid_request"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    HTTP_ERROR = "http_error"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    INSUFFICIENT_SCOPE = "insufficient_scope"
    ORIGIN_REFUSED = "origin_refused"
    INVALID_TOKEN = "invalid_token"
    INVALID_CREDENTIALS = "invalid_credentials"
    INVALID_REFRESH_TOKEN = "invalid_refresh_token"
    INVALID_VERIFICATION_TOKEN = "invalid_verification_token"
    INVALID_RESET_TOKEN = "invalid_reset_token"
    PASSWORD_RESET_DISABLED = "password_reset_disabled"
    EMAIL_NOT_VERIFIED = "email_not_verified"
    TWO_FACTOR_REQUIRED = "2fa_required"
    INVALID_2FA_CODE = "invalid_2fa_code"
    INVALID_2FA_TOKEN = "invalid_2fa_token"
    TWO_FACTOR_NOT_ENABLED = "2fa_not_enabled"
    TWO_FACTOR_NOT_PENDING = "2fa_not_pending"
    REGISTRATION_DISABLED = "registration_disabled"
    EMAIL_LOGIN_DISABLED = "email_login_disabled"
    USERNAME_TAKEN = "username_taken"
    PASSWORD_POLICY = "password_policy"
    BANNED = "banned"
    MFA_REQUIRED = "mfa_required"
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    MODERATION_UNAVAILABLE = "moderation_unavailable"
    REVOCATION_STATE_STALE = "revocation_state_stale"
    STORE_UNAVAILABLE = "store_unavailable"
    INTERNAL_ERROR = "internal_error"
    INVALID_SUBJECT = "invalid_subject"
    SUBJECT_EXEMPT = "subject_exempt"
    BAN_NOT_FOUND = "ban_not_found"
    AUTH_FAILED = "auth_failed"
    SOCIAL_LOGIN_DISABLED = "social_login_disabled"
    SOCIAL_REGISTRATION_DISABLED = "social_registration_disabled"
    EMAIL_DOMAIN_NOT_ALLOWED = "email_domain_not_allowed"
    ROLE_REQUIRED = "role_required"
    LINK_REQUIRED = "link_required"
    IDENTITY_IN_USE = "identity_in_use"
    LOGOUT_TOKEN_REPLAYED = "logout_token_replayed"
    PASSKEYS_DISABLED = "passkeys_disabled"
    INVALID_PASSKEY = "invalid_passkey"
    INVALID_PASSKEY_REGISTRATION = "invalid_passkey_registration"
    PASSKEY_CHALLENGE_INVALID = "passkey_challenge_invalid"
    LAST_SIGN_IN_METHOD = "last_sign_in_method"


class ApiError(Exception):
    """An expected failure with a stable code; rendered as `{code, message}`."""

    def __init__(
        self,
        status: int,
        code: ErrorCode,
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


class DomainError(Exception):
    """A domain rule refused the operation; only the API layer turns it into HTTP.

    Domain code raises this (or a subclass named for the rule) with a stable code and a
    message safe to show; `retry_after` and `details` become the `Retry-After` header and
    extra body fields. The status comes from `HTTP_STATUS`, so a rule never picks one.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        retry_after: int | None = None,
        details: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.details = dict(details or {})


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.INVALID_JSON: 400,
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.INVALID_INPUT: 422,
    ErrorCode.PASSWORD_POLICY: 422,
    ErrorCode.INVALID_SUBJECT: 422,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.BAN_NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.INVALID_TOKEN: 401,
    ErrorCode.INVALID_CREDENTIALS: 401,
    ErrorCode.INVALID_REFRESH_TOKEN: 401,
    ErrorCode.INVALID_VERIFICATION_TOKEN: 400,
    ErrorCode.INVALID_RESET_TOKEN: 400,
    ErrorCode.PASSWORD_RESET_DISABLED: 403,
    ErrorCode.EMAIL_NOT_VERIFIED: 422,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.INSUFFICIENT_SCOPE: 403,
    ErrorCode.ORIGIN_REFUSED: 403,
    ErrorCode.TWO_FACTOR_REQUIRED: 403,
    ErrorCode.INVALID_2FA_CODE: 401,
    ErrorCode.INVALID_2FA_TOKEN: 401,
    ErrorCode.TWO_FACTOR_NOT_ENABLED: 400,
    ErrorCode.TWO_FACTOR_NOT_PENDING: 400,
    ErrorCode.REGISTRATION_DISABLED: 403,
    ErrorCode.EMAIL_LOGIN_DISABLED: 403,
    ErrorCode.BANNED: 403,
    ErrorCode.MFA_REQUIRED: 403,
    ErrorCode.USERNAME_TAKEN: 409,
    ErrorCode.SUBJECT_EXEMPT: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.OVERLOADED: 503,
    ErrorCode.MODERATION_UNAVAILABLE: 503,
    ErrorCode.REVOCATION_STATE_STALE: 503,
    ErrorCode.STORE_UNAVAILABLE: 503,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.HTTP_ERROR: 400,
    ErrorCode.AUTH_FAILED: 401,
    ErrorCode.SOCIAL_LOGIN_DISABLED: 403,
    ErrorCode.SOCIAL_REGISTRATION_DISABLED: 403,
    ErrorCode.EMAIL_DOMAIN_NOT_ALLOWED: 403,
    ErrorCode.ROLE_REQUIRED: 403,
    ErrorCode.LINK_REQUIRED: 403,
    ErrorCode.IDENTITY_IN_USE: 409,
    ErrorCode.LOGOUT_TOKEN_REPLAYED: 400,
    ErrorCode.PASSKEYS_DISABLED: 404,
    ErrorCode.INVALID_PASSKEY: 401,
    ErrorCode.INVALID_PASSKEY_REGISTRATION: 400,
    ErrorCode.PASSKEY_CHALLENGE_INVALID: 400,
    ErrorCode.LAST_SIGN_IN_METHOD: 409,
}


def api_error_of(error: DomainError, headers: Mapping[str, str] | None = None) -> ApiError:
    """The HTTP answer for a domain error; `headers` adds route-specific ones."""
    merged = dict(headers or {})
    if error.retry_after is not None:
        merged.setdefault("Retry-After", str(error.retry_after))
    return ApiError(HTTP_STATUS[error.code], error.code, error.message, merged, error.details)


def error_response(
    status: int,
    code: ErrorCode,
    message: str,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, object] | None = None,
) -> JSONResponse:
    body: dict[str, object] = {"code": code, "message": message, **(extra or {})}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


_HTTP_CODES = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
}


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.headers, exc.extra)


async def domain_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return await api_error_handler(request, api_error_of(exc))


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, ErrorCode.HTTP_ERROR)
    return error_response(exc.status_code, code, str(exc.detail), exc.headers)


async def store_unavailable_handler(request: Request, exc: Exception) -> Response:
    log.warning("store_unavailable", path=request.url.path, error=type(exc).__name__)
    return error_response(
        503,
        ErrorCode.STORE_UNAVAILABLE,
        "The data store is unavailable; retry shortly.",
        {"Retry-After": "2"},
    )


async def internal_error_handler(request: Request, exc: Exception) -> Response:
    """Last resort: log the exception, answer a generic 500 with the request id."""
    request_id = request.scope.get("state", {}).get("request_id", "")
    log.exception("unhandled_error", path=request.url.path)
    return error_response(
        500,
        ErrorCode.INTERNAL_ERROR,
        "Internal error.",
        {"X-Request-Id": request_id},
        {"request_id": request_id},
    )


class ErrorBoundary:
    """Answer an unexpected exception here, inside CORS and request-id middleware.

    Starlette's own last-resort handler sits outside every user middleware, so its 500
    carries no CORS headers and a browser app cannot read it. Once a response has
    started nothing can be sent any more, so the exception goes on up.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started or scope["type"] != "http":
                raise
            response = await internal_error_handler(Request(scope), exc)
            await response(scope, receive, send)


EXCEPTION_HANDLERS = {
    ApiError: api_error_handler,
    DomainError: domain_error_handler,
    HTTPException: http_exception_handler,
    StoreUnavailable: store_unavailable_handler,
    Exception: internal_error_handler,
}
