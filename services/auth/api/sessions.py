"""GET/DELETE /api/auth/sessions: the caller's devices, and revoking them."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.auth.api.common import NO_STORE, ctx, require_access
from shared.errors import ApiError, ErrorCode
from shared.timefmt import iso_utc


async def list_sessions(request: Request) -> Response:
    caller = await require_access(request)
    sessions = await ctx(request).sessions.list_live(caller.claims.user_id)
    body = [
        {
            "id": s.id,
            "created": iso_utc(s.created_at),
            "last_used": iso_utc(s.last_used_at),
            "expires": iso_utc(s.expires_at),
            "ip": s.ip,
            "user_agent": s.user_agent,
            "current": s.id == caller.session.id,
        }
        for s in sessions
    ]
    return JSONResponse(body, headers=NO_STORE)


async def revoke_session(request: Request) -> Response:
    caller = await require_access(request)
    session_id = request.path_params["session_id"]
    revoked = await ctx(request).sessions.revoke(
        user_id=caller.claims.user_id,
        session_ids=[session_id],
        reason="user_revoked",
        actor=caller.claims.user_id,
    )
    if revoked == 0:
        raise ApiError(404, ErrorCode.NOT_FOUND, "No such session.")
    return JSONResponse({"message": "Session revoked.", "revoked": revoked}, headers=NO_STORE)


async def revoke_other_sessions(request: Request) -> Response:
    caller = await require_access(request)
    revoked = await ctx(request).sessions.revoke(
        user_id=caller.claims.user_id,
        keep=caller.session.id,
        reason="user_revoked_others",
        actor=caller.claims.user_id,
    )
    return JSONResponse({"message": "Other sessions revoked.", "revoked": revoked}, headers=NO_STORE)
