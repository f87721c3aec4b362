"""POST /api/auth/introspect (RFC 7662) for internal services that cannot verify tokens.

Form-encoded as the RFC says; the caller authenticates with a service key
(`AUTH_SERVICE_KEYS`, scope `introspect`). Inactive tokens get `{"active": false}`
and nothing else, whatever the reason.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.auth.api.common import NO_STORE, ctx
from services.auth.tokens import InvalidToken
from shared.errors import ApiError, ErrorCode
from shared.http import authenticate_service, read_body

INACTIVE = {"active": False}


async def introspect(request: Request) -> Response:
    context = ctx(request)
    caller = authenticate_service(request, context.settings.service_keys, "introspect")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise ApiError(
            415, ErrorCode.UNSUPPORTED_MEDIA_TYPE, "Send application/x-www-form-urlencoded (RFC 7662)."
        )
    raw = await read_body(request, 16 * 1024)
    try:
        form = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise ApiError(400, ErrorCode.INVALID_REQUEST, "The form body is not UTF-8.") from None
    tokens = form.get("token", [])
    if len(tokens) != 1 or not tokens[0]:
        raise ApiError(400, ErrorCode.INVALID_REQUEST, "Give exactly one 'token' parameter.")
    try:
        claims = context.tokens.verify(tokens[0])
    except InvalidToken:
        return JSONResponse(INACTIVE, headers=NO_STORE)
    if context.revocations.predates(claims.user_id, claims.epoch):
        return JSONResponse(INACTIVE, headers=NO_STORE)
    session = await context.sessions.find_live(claims.session_id)
    if session is None or session.user_id != claims.user_id:
        return JSONResponse(INACTIVE, headers=NO_STORE)
    await context.audit.record("token_introspected", user_id=claims.user_id, actor=caller.name)
    return JSONResponse(
        {
            "active": True,
            "token_type": "Bearer",  # RFC 7662 §2.2: a type from RFC 6749 §5.1
            "sub": claims.user_id,
            "username": claims.username,
            "email": claims.email,
            "role": claims.role,
            "sid": claims.session_id,
            "jti": claims.jti,
            "iat": claims.issued_at,
            "exp": claims.expires_at,
            "iss": context.settings.jwt_issuer,
            "aud": context.settings.jwt_audience,
        },
        headers=NO_STORE,
    )
