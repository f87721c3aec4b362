"""POST /api/auth/register, /login, /refresh, /logout: LibreChat's paths and shapes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.auth.accounts import (
    REGISTER_MESSAGE,
    canonical_username,
    normalize_email,
    public_user,
    user_id_of,
)
from services.auth.api.common import (
    NO_STORE,
    client_ip,
    ctx,
    refuse_foreign_origin,
    token_response,
    user_agent,
)
from services.auth.api.cookies import (
    REFRESH_COOKIE_PATH,
    RefusedClearingCookies,
    clear_librechat_leftover,
    clear_session_cookies,
    refresh_cookie_values,
)
from services.auth.api.login_flow import check_password_login, invalid_credentials
from services.auth.context import AuthContext
from services.auth.counters import LOGINS, REFRESHES
from services.auth.devices import DEVICE_COOKIE
from services.auth.passwords import within_size_cap
from services.auth.protection import banned_error
from services.auth.registration import register_account
from services.auth.schemas import LoginRequest, LogoutRequest, RefreshRequest, RegisterRequest
from services.auth.session_cookie import AMR_PASSWORD
from services.auth.sessions import InvalidRefreshToken, RevokedByBan, Session, StaleCredentials
from services.auth.store import Document
from services.auth.tokens import AccessClaims, AccessTokens, InvalidToken
from shared.errors import ApiError, DomainError, ErrorCode
from shared.http import bearer_token, parse_body


def _invalid_refresh() -> ApiError:
    return ApiError(401, ErrorCode.INVALID_REFRESH_TOKEN, "The refresh token is missing, invalid or expired.")


async def register(request: Request) -> Response:
    context = ctx(request)
    if not context.settings.allow_registration:
        raise ApiError(403, ErrorCode.REGISTRATION_DISABLED, "Registration is disabled.")
    body = await parse_body(request, RegisterRequest)
    ip = client_ip(request)
    await context.protection.before_register(ip)  # before any hashing: a flood costs no argon2 work
    if body.password != body.confirm_password:
        raise ApiError(422, ErrorCode.INVALID_INPUT, "confirm_password: passwords do not match")
    await register_account(
        context.accounts,
        context.verification,
        context.audit,
        email=body.email,
        username=body.username,
        name=body.name,
        password=body.password,
        ip=ip,
    )
    return JSONResponse({"message": REGISTER_MESSAGE}, headers=NO_STORE)


async def login(request: Request) -> Response:
    context = ctx(request)
    if not context.settings.allow_email_login:
        raise ApiError(403, ErrorCode.EMAIL_LOGIN_DISABLED, "Email login is disabled.")
    body = await parse_body(request, LoginRequest)
    if not within_size_cap(body.password):
        raise ApiError(422, ErrorCode.INVALID_INPUT, "password: at most 128 characters and 1 KiB")
    ip = client_ip(request)
    device_cookie = request.cookies.get(DEVICE_COOKIE)
    checked = await check_password_login(
        context, body.email, body.password, ip, device_cookie, in_body=body.refresh_token_in_body
    )
    if checked.temp_token is not None:
        return JSONResponse({"twoFAPending": True, "tempToken": checked.temp_token}, headers=NO_STORE)
    user = checked.user
    try:
        response = await issue_session(
            request,
            user,
            ip,
            in_body=body.refresh_token_in_body,
            epoch=checked.epoch,
            login_email=checked.email,
        )
    except StaleCredentials:
        LOGINS.labels("stale").inc()
        raise invalid_credentials() from None
    LOGINS.labels("success").inc()
    if not body.refresh_token_in_body:  # service clients keep no cookies
        trusted = device_cookie if checked.gate.device_trusted else None
        set_device_cookie(request, response, user, checked.gate.account, trusted, checked.device_epoch)
    return response


def set_device_cookie(
    request: Request,
    response: Response,
    user: Document,
    account: str,
    trusted_cookie: str | None,
    device_epoch: int,
) -> None:
    """Remember this browser for the account: its failures then count against a wider cap.

    A cookie the login gate just found trusted for this user carries the current device epoch
    (the gate compared it with the store): it is renewed with that epoch. Otherwise the epoch
    is the one this login read with the session epoch. Should the epoch be bumped in between,
    the new cookie is stale and stops being trusted: fail closed.
    """
    devices = ctx(request).protection.devices
    user_id = user_id_of(user)
    claim = devices.parse(trusted_cookie, account) if trusted_cookie else None
    epoch = claim.epoch if claim is not None and claim.user_id == user_id else device_epoch
    response.set_cookie(
        DEVICE_COOKIE,
        devices.issue(user_id, account, epoch),
        max_age=devices.max_age,
        path=REFRESH_COOKIE_PATH,
        secure=not ctx(request).settings.development,
        httponly=True,
        samesite="strict",
    )


async def start_session(
    context: AuthContext,
    user: Document,
    ip: str,
    agent: str | None,
    *,
    epoch: int,
    amr: tuple[str, ...] = (AMR_PASSWORD,),
) -> tuple[Session, str]:
    """A new session (and its refresh token) for a user whose credentials were checked; audited."""
    user_id = user_id_of(user)
    session, refresh_token = await context.sessions.create(user_id, ip, agent, epoch, amr)
    await context.audit.record("login", user_id=user_id, ip=ip, session_id=session.id)
    return session, refresh_token


async def issue_session(
    request: Request,
    user: Document,
    ip: str,
    *,
    in_body: bool,
    epoch: int = 0,
    login_email: str = "",
    amr: tuple[str, ...] = (AMR_PASSWORD,),
) -> Response:
    context = ctx(request)
    session, refresh_token = await start_session(context, user, ip, user_agent(request), epoch=epoch, amr=amr)
    issued = _access_token(context.tokens, user, session.id, session.epoch, login_email)
    return token_response(
        request, {"token": issued, "user": public_user(user)}, refresh_token, in_body=in_body
    )


def _access_token(
    tokens: AccessTokens, user: Document, session_id: str, epoch: int, known_canonical: str = ""
) -> str:
    """`known_canonical`: the login's own normalized email; a stored email equal to it is canonical
    already (normalization is idempotent, tests/fuzz/test_email_property.py), so it is not re-validated."""
    address = str(user.get("email", ""))
    canonical = address if address and address == known_canonical else normalize_email(address)
    return tokens.issue(
        user_id=user_id_of(user),
        session_id=session_id,
        email=canonical,  # upstream apps see one form per mailbox
        username=canonical_username(str(user.get("username") or "")),
        role=str(user.get("role", "USER")),
        provider=str(user.get("provider", "local")),
        epoch=epoch,
    ).token


def _refresh_tokens_from(request: Request, body_token: str | None) -> tuple[list[str], bool]:
    """The body field wins (service clients); browsers send the cookie, perhaps LibreChat's too."""
    if body_token:
        return [body_token], True
    return refresh_cookie_values(request), False


def _refused(error: ApiError | DomainError, in_body: bool) -> Exception:
    """A refused browser cookie is also cleared (on authgate's path and LibreChat's)."""
    return error if in_body else RefusedClearingCookies(error)


async def _rotate_first_live(
    context: AuthContext, tokens: list[str], ip: str, agent: str | None
) -> tuple[Session, str]:
    """The first token that rotates wins; each one tried keeps its reuse detection.

    When none does, the refusal that names a user is kept, so a banned user hears of the ban.
    """
    refusal: InvalidRefreshToken | None = None
    for token in tokens:
        try:
            return await context.sessions.rotate(token, ip, agent)
        except InvalidRefreshToken as exc:
            if refusal is None or refusal.user_id is None:
                refusal = exc
    raise refusal or InvalidRefreshToken("missing")


async def refresh(request: Request) -> Response:
    context = ctx(request)
    refuse_foreign_origin(request)
    body = await parse_body(request, RefreshRequest, allow_empty=True)
    tokens, in_body = _refresh_tokens_from(request, body.refresh_token)
    if not tokens:
        raise _invalid_refresh()
    ip = client_ip(request)
    protection = context.protection
    await protection.before_refresh(ip)
    try:
        session, child = await _rotate_first_live(context, tokens, ip, user_agent(request))
    except InvalidRefreshToken as exc:
        ban = protection.user_ban(exc.user_id) if exc.user_id else None
        if ban is not None:
            REFRESHES.labels("banned").inc()
            raise _refused(banned_error(ban), in_body) from None
        REFRESHES.labels("invalid").inc()
        raise _refused(_invalid_refresh(), in_body) from None
    ban = protection.user_ban(session.user_id)
    if ban is not None:  # the ban is known here before its revocation landed
        await context.sessions.revoke(
            user_id=session.user_id,
            reason="user_banned",
            actor="moderation",
            ban=RevokedByBan(ban.reason, ban.expires_at),
        )
        raise _refused(banned_error(ban), in_body)
    user = await context.accounts.find_by_id(session.user_id)
    if user is None:
        await context.sessions.revoke(user_id=session.user_id, reason="user_deleted", actor="system")
        REFRESHES.labels("invalid").inc()
        raise _refused(_invalid_refresh(), in_body)
    REFRESHES.labels("rotated").inc()
    issued = _access_token(context.tokens, user, session.id, session.epoch)
    response = token_response(request, {"token": issued, "user": public_user(user)}, child, in_body=in_body)
    if not in_body and len(tokens) > 1:
        clear_librechat_leftover(context, response)
    return response


def _verified_claims(context: AuthContext, bearer: str | None) -> AccessClaims | None:
    """The bearer token's claims when it verifies and is not known revoked (memory only)."""
    if bearer is None:
        return None
    try:
        claims = context.tokens.verify(bearer)
    except InvalidToken:
        return None
    revocations = context.revocations
    if revocations.is_revoked(claims.session_id) or revocations.predates(claims.user_id, claims.epoch):
        return None
    return claims


async def logout(request: Request) -> Response:
    """Revoke the session named by the bearer token or by the refresh token."""
    context = ctx(request)
    refuse_foreign_origin(request)
    body = await parse_body(request, LogoutRequest, allow_empty=True)
    session_id: str | None = None
    user_id: str | None = None
    claims = _verified_claims(context, bearer_token(request))
    # Before any store lookup: a banned address passes only with a token that verifies.
    await context.protection.before_logout(client_ip(request), token_verified=claims is not None)
    if claims is not None:
        live = await context.sessions.find_live(claims.session_id)
        if live is not None and live.user_id == claims.user_id:
            session_id, user_id = live.id, live.user_id
    tokens, in_body = _refresh_tokens_from(request, body.refresh_token)
    for token in tokens if session_id is None else []:
        found = await context.sessions.find_by_token(token)
        if found is not None:
            session_id, user_id = found.id, found.user_id
            break
    if session_id is None or user_id is None:
        refusal = ApiError(
            401, ErrorCode.UNAUTHORIZED, "No live session to log out.", {"WWW-Authenticate": "Bearer"}
        )
        raise _refused(refusal, in_body or not tokens)
    await context.sessions.revoke(user_id=user_id, session_ids=[session_id], reason="logout", actor=user_id)
    await context.audit.record("logout", user_id=user_id, ip=client_ip(request), session_id=session_id)
    response = JSONResponse({"message": "Logged out."}, headers=NO_STORE)
    clear_session_cookies(context, response)
    return response
