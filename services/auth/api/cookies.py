"""The browser's session cookies, and LibreChat's, so a cut-over from LibreChat logs nobody out.

authgate keeps the refresh token in `refreshToken` at `Path=/api/auth`; LibreChat set the same
name at `Path=/` and a `token_provider=librechat` beside it. A browser that used LibreChat sends
both refresh cookies (the longer path first), so every one is tried, and every refusal and every
logout clears the name on both paths.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from services.auth.context import AuthContext
from shared.errors import ApiError, DomainError, api_error_of, error_response

REFRESH_COOKIE = "refreshToken"
REFRESH_COOKIE_PATH = "/api/auth"
# Where LibreChat sets its cookies; authgate clears `refreshToken` there too.
LIBRECHAT_COOKIE_PATH = "/"
TOKEN_PROVIDER_COOKIE = "token_provider"
TOKEN_PROVIDER = "librechat"  # what LibreChat's client expects after a local login
# A browser holds at most one per path; more than a few is noise, never a reason to do more work.
MAX_REFRESH_CANDIDATES = 4
MAX_TOKEN_CHARS = 4096


def refresh_cookie_values(request: Request) -> list[str]:
    """Every `refreshToken` the request carries, in the order sent, without repeats (at most 4).

    Starlette's `request.cookies` keeps one value per name, so the raw header is read.
    """
    found: list[str] = []
    for header in request.headers.getlist("cookie"):
        for pair in header.split(";"):
            name, sep, value = pair.strip().partition("=")
            value = value.strip().strip('"')
            wanted = sep and name == REFRESH_COOKIE and 0 < len(value) <= MAX_TOKEN_CHARS
            if wanted and value not in found:
                found.append(value)
                if len(found) == MAX_REFRESH_CANDIDATES:
                    return found
    return found


def _secure(context: AuthContext) -> bool:
    return not context.settings.development


def set_session_cookies(context: AuthContext, response: Response, refresh_token: str) -> None:
    """The refresh cookie for authgate's paths, and LibreChat's `token_provider` marker."""
    max_age = context.settings.refresh_token_expiry_ms // 1000
    secure = _secure(context)
    response.set_cookie(
        REFRESH_COOKIE,
        refresh_token,
        max_age=max_age,
        path=REFRESH_COOKIE_PATH,
        secure=secure,
        httponly=True,
        samesite="strict",
    )
    response.set_cookie(
        TOKEN_PROVIDER_COOKIE,
        TOKEN_PROVIDER,
        max_age=max_age,
        path=LIBRECHAT_COOKIE_PATH,
        secure=secure,
        httponly=True,
        samesite="strict",
    )


def clear_session_cookies(context: AuthContext, response: Response) -> None:
    """`refreshToken` on both paths (authgate's and a LibreChat leftover) and `token_provider`."""
    secure = _secure(context)
    for name, path in (
        (REFRESH_COOKIE, REFRESH_COOKIE_PATH),
        (REFRESH_COOKIE, LIBRECHAT_COOKIE_PATH),
        (TOKEN_PROVIDER_COOKIE, LIBRECHAT_COOKIE_PATH),
    ):
        response.delete_cookie(name, path=path, secure=secure, httponly=True, samesite="strict")


def clear_librechat_leftover(context: AuthContext, response: Response) -> None:
    """After a refresh that found authgate's cookie among several: the dead one at `/` goes,
    so the browser stops sending it (authgate never sets `refreshToken` at `/`)."""
    response.delete_cookie(
        REFRESH_COOKIE, path=LIBRECHAT_COOKIE_PATH, secure=_secure(context), httponly=True, samesite="strict"
    )


class RefusedClearingCookies(Exception):
    """A refusal of the browser's refresh cookie: the answer also clears the session cookies."""

    def __init__(self, error: ApiError | DomainError) -> None:
        super().__init__(error.message)
        self.error = error


async def refused_clearing_cookies_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RefusedClearingCookies)
    error = exc.error if isinstance(exc.error, ApiError) else api_error_of(exc.error)
    response = error_response(error.status, error.code, error.message, error.headers, error.extra)
    clear_session_cookies(request.app.state.ctx, response)
    return response


HANDLERS = {RefusedClearingCookies: refused_clearing_cookies_handler}
