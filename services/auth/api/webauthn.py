"""/api/auth/webauthn/*: passkeys for any front end (JSON, bearer tokens).

Registering and managing passkeys needs a signed-in user (a live access token). Signing in is
anonymous: `login/options` reports moderation's `login` event before any work (bans and limits
apply), and a verified assertion starts a session exactly as `/api/auth/login` does (access
token, refresh cookie or body) with amr `hwk`: no password and no second factor.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.auth.accounts import user_id_of
from services.auth.api.auth import issue_session
from services.auth.api.common import NO_STORE, client_ip, ctx, require_access, unauthorized
from services.auth.api.login_flow import invalid_credentials
from services.auth.api.passkey_login import check_passkey_login, start_passkey_login
from services.auth.api.two_factor import password_limited
from services.auth.counters import LOGINS
from services.auth.passkeys.manager import PasskeyInfo, disabled
from services.auth.passkeys.schemas import (
    EmptyRequest,
    LoginVerifyRequest,
    RegisterOptionsRequest,
    RegisterVerifyRequest,
    RenameRequest,
    credential_json,
)
from services.auth.session_cookie import AMR_HARDWARE_KEY
from services.auth.sessions import StaleCredentials
from services.auth.store import Document
from shared.http import parse_body
from shared.timefmt import iso_utc


def passkey_json(passkey: PasskeyInfo) -> dict[str, object]:
    return {
        "id": passkey.id,
        "name": passkey.name,
        "created": iso_utc(passkey.created_at),
        "last_used": iso_utc(passkey.last_used_at) if passkey.last_used_at else None,
        "transports": list(passkey.transports),
        "backed_up": passkey.backed_up,
    }


def _enabled(request: Request) -> None:
    if not ctx(request).passkeys.enabled:
        raise disabled()


async def _caller(request: Request) -> Document:
    """The signed-in user (401 before anything else), then whether passkeys are on."""
    caller = await require_access(request)
    _enabled(request)
    user = await ctx(request).accounts.find_by_id(caller.claims.user_id)
    if user is None:
        raise unauthorized("The account no longer exists.")
    return user


async def register_options(request: Request) -> Response:
    user = await _caller(request)
    body = await parse_body(request, RegisterOptionsRequest, allow_empty=True)
    passkeys = ctx(request).passkeys
    options = await password_limited(
        request, user, body.password, lambda: passkeys.registration_options(user, body.password)
    )
    return JSONResponse(options, headers=NO_STORE)


async def register_verify(request: Request) -> Response:
    user = await _caller(request)
    body = await parse_body(request, RegisterVerifyRequest)
    passkey = await ctx(request).passkeys.register(
        user, credential_json(body.credential), body.name, client_ip(request)
    )
    return JSONResponse(
        {"message": "Passkey registered.", "passkey": passkey_json(passkey)},
        status_code=201,
        headers=NO_STORE,
    )


async def login_options(request: Request) -> Response:
    _enabled(request)
    await parse_body(request, EmptyRequest, allow_empty=True)
    options = await start_passkey_login(ctx(request), client_ip(request))
    return JSONResponse(options, headers=NO_STORE)


async def login_verify(request: Request) -> Response:
    _enabled(request)
    body = await parse_body(request, LoginVerifyRequest)
    ip = client_ip(request)
    checked = await check_passkey_login(ctx(request), credential_json(body.credential), ip)
    try:
        response = await issue_session(
            request,
            checked.user,
            ip,
            in_body=body.refresh_token_in_body,
            epoch=checked.epoch,
            amr=(AMR_HARDWARE_KEY,),
        )
    except StaleCredentials:
        LOGINS.labels("stale").inc()
        raise invalid_credentials() from None
    LOGINS.labels("success").inc()
    return response


async def list_credentials(request: Request) -> Response:
    user = await _caller(request)
    passkeys = await ctx(request).passkeys.list(user_id_of(user))
    return JSONResponse({"passkeys": [passkey_json(p) for p in passkeys]}, headers=NO_STORE)


async def rename_credential(request: Request) -> Response:
    user = await _caller(request)
    body = await parse_body(request, RenameRequest)
    await ctx(request).passkeys.rename(user_id_of(user), request.path_params["passkey_id"], body.name)
    return JSONResponse({"message": "Passkey renamed."}, headers=NO_STORE)


async def delete_credential(request: Request) -> Response:
    user = await _caller(request)
    user_id = user_id_of(user)
    await ctx(request).passkeys.remove(user, request.path_params["passkey_id"], user_id, client_ip(request))
    return JSONResponse({"message": "Passkey removed."}, headers=NO_STORE)
