"""Helpers every auth handler uses: the context, the caller's identity, token responses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse

from services.auth.api.cookies import set_session_cookies
from services.auth.context import AuthContext
from services.auth.sessions import Session
from services.auth.tokens import AccessClaims, InvalidToken
from shared.errors import ApiError, ErrorCode
from shared.http import bearer_token

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def ctx(request: Request) -> AuthContext:
    context: AuthContext = request.app.state.ctx
    return context


def client_ip(request: Request) -> str:
    return ctx(request).settings.client_ip.from_request(request)


def user_agent(request: Request) -> str | None:
    return request.headers.get("user-agent")


def _origin_of(url: str | None) -> str | None:
    """`scheme://host[:port]`, lower-cased, the way browsers write an Origin header."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def refuse_foreign_origin(request: Request) -> None:
    """Cookie-authenticated routes answer only our own pages: SameSite is not the only guard.

    A browser names the page that sent a request in `Origin`; a service client sends none.
    Allowed: the service's own origin (the Host it was reached at, or DOMAIN_SERVER) and
    DOMAIN_CLIENT. Anything else, `null` included, is 403 `origin_refused`.
    """
    origin = request.headers.get("origin")
    if origin is None:
        return
    settings = ctx(request).settings
    presented = _origin_of(origin)
    host = request.headers.get("host", "").lower()
    allowed = {_origin_of(settings.domain_client), _origin_of(settings.domain_server)} - {None}
    if presented is not None and (presented in allowed or presented.split("://", 1)[1] == host):
        return
    raise ApiError(403, ErrorCode.ORIGIN_REFUSED, "Requests from this origin are refused.")


def unauthorized(message: str = "A valid access token is required.") -> ApiError:
    return ApiError(401, ErrorCode.UNAUTHORIZED, message, {"WWW-Authenticate": "Bearer"})


@dataclass(frozen=True)
class Caller:
    claims: AccessClaims
    session: Session


async def require_access(request: Request) -> Caller:
    """A valid access token whose session is still live (revocation is honoured here)."""
    token = bearer_token(request)
    if token is None:
        raise unauthorized()
    context = ctx(request)
    try:
        claims = context.tokens.verify(token)
    except InvalidToken:
        raise unauthorized("The access token is invalid or expired.") from None
    if context.revocations.predates(claims.user_id, claims.epoch):
        raise unauthorized("The session has ended.")
    session = await context.sessions.find_live(claims.session_id)
    if session is None or session.user_id != claims.user_id:
        raise unauthorized("The session has ended.")
    return Caller(claims, session)


def token_response(
    request: Request, body: dict[str, Any], refresh_token: str, *, in_body: bool, status: int = 200
) -> JSONResponse:
    """Access token in the body; refresh token in an HttpOnly cookie or, for service clients, the body."""
    if in_body:
        body = {**body, "refresh_token": refresh_token}
    response = JSONResponse(body, status_code=status, headers=NO_STORE)
    if not in_body:
        set_session_cookies(ctx(request), response, refresh_token)
    return response
