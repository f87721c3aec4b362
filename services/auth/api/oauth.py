"""GET /oauth/<provider>, GET /oauth/<provider>/callback, POST /oauth/openid/backchannel-logout.

Providers: `openid` (generic OpenID Connect), `google` (OpenID Connect preset), `github`,
`discord`, `facebook` (OAuth2 presets); all share this flow.

LibreChat's paths, so its web client's OpenID button works: the start redirects to the provider
with state, nonce and PKCE S256, its flow sealed in a short-lived HttpOnly cookie; the callback
verifies everything, applies the sign-in rules (services/auth/social/signin.py), starts the
same session a password login starts (refresh cookie; the portal's session cookie too when the
flow began at the portal) and redirects to the flow's `rd` (checked against
AUTH_REDIRECT_DOMAINS) or DOMAIN_CLIENT. Every refusal in the browser redirects to
`${DOMAIN_CLIENT}/login?redirect=false&error=<code>` (LibreChat's failure page) or, for a flow
begun at the portal, shows the portal's message page; `Accept: application/json` gets the JSON
error instead. A user with a second factor finishes at the portal's 2FA step.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.auth.accounts import user_id_of
from services.auth.api.auth import start_session
from services.auth.api.common import NO_STORE, client_ip, ctx, user_agent
from services.auth.api.cookies import set_session_cookies
from services.auth.api.openid_state import openid_provider, provider_named
from services.auth.api.portal_support import message, redirect, set_session_cookie, set_temp_cookie
from services.auth.counters import LOGINS
from services.auth.portal.forms import FormTooLarge, fields
from services.auth.protection import banned_error
from services.auth.session_cookie import AMR_OTP
from services.auth.sessions import StaleCredentials
from services.auth.social.flow import (
    FLOW_MAX_AGE_S,
    MAX_OPEN_FLOWS,
    MODE_LINK,
    Flow,
    FlowRefused,
    FlowSealer,
    cookie_suffix,
    new_flow,
)
from services.auth.social.oidc import ProviderRefused
from services.auth.social.pending import PENDING_MAX_AGE_S, PendingSealer, PendingSignIn, temp_digest
from services.auth.social.signin import OpenIdSignIn, Rules
from services.auth.store import Document
from shared.errors import ApiError, DomainError, ErrorCode, api_error_of

log = structlog.get_logger("authgate.social")

PROVIDER = "openid"
GOOGLE = "google"
GITHUB = "github"
AMR_FEDERATED = "fed"  # signed in at an external identity provider
LINKS_PATH = "/portal/account/links"
MAX_FLOW_RD = 1024
_MESSAGES = {
    ErrorCode.SOCIAL_LOGIN_DISABLED: "Sign-in through an identity provider is disabled.",
    ErrorCode.SOCIAL_REGISTRATION_DISABLED: "There is no account for this identity, and sign-up is disabled.",
    ErrorCode.EMAIL_DOMAIN_NOT_ALLOWED: "Sign-up from this email domain is not allowed.",
    ErrorCode.ROLE_REQUIRED: "Your account at the identity provider lacks the required role.",
    ErrorCode.LINK_REQUIRED: (
        "An account with this email already exists. Sign in with your password, then link this "
        "provider from your account page (Account, Sign-in methods)."
    ),
    ErrorCode.IDENTITY_IN_USE: "This provider account is already linked to another account.",
    ErrorCode.AUTH_FAILED: "The sign-in could not be completed. Start again.",
    ErrorCode.BANNED: "Access is temporarily banned.",
    ErrorCode.RATE_LIMITED: "Too many attempts. Wait a moment and retry.",
}


def _flow_cookie_prefix(request: Request, provider: str = "") -> str:
    name = f"authgate_oauth_{provider + '_' if provider else ''}"
    return name if ctx(request).settings.development else "__Host-" + name


def flow_cookie_name(request: Request, provider: str, state: str) -> str:
    """One cookie per flow (two tabs, two sign-ins), named by a digest of its state."""
    return _flow_cookie_prefix(request, provider) + cookie_suffix(state)


def _sealer(request: Request) -> FlowSealer:
    return FlowSealer(ctx(request).settings.social.flow_key)


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "").lower()


def failure(request: Request, error: DomainError, *, portal: bool, provider: str = PROVIDER) -> Response:
    """The refusal as the caller can read it; never a session, and the flow cookie goes."""
    context = ctx(request)
    code = error.code
    if _wants_json(request):
        api = api_error_of(error)
        response: Response = JSONResponse(
            {"code": code.value, "message": api.message, **api.extra},
            status_code=api.status,
            headers=api.headers,
        )
    elif portal or not context.settings.domain_client:
        status = api_error_of(error).status
        text = _MESSAGES.get(code, error.message)
        heading = "Sign-in refused" if code != ErrorCode.AUTH_FAILED else "Sign-in failed"
        response = message(request, status, heading, text)
    else:
        query = urlencode({"redirect": "false", "error": code.value})
        response = redirect(f"{context.settings.domain_client.rstrip('/')}/login?{query}", 302)
    _clear_flow_cookie(request, response, provider, request.query_params.get("state"))
    return response


def _set_flow_cookie(request: Request, response: Response, flow: Flow) -> None:
    response.set_cookie(
        flow_cookie_name(request, flow.provider, flow.state),
        _sealer(request).seal(flow),
        max_age=FLOW_MAX_AGE_S,
        path="/",
        secure=not ctx(request).settings.development,
        httponly=True,
        samesite="lax",  # the provider's redirect back is a cross-site top-level GET
    )


def _clear_flow_cookie(request: Request, response: Response, provider: str, state: str | None) -> None:
    """The flow cookie of `state` goes, when the browser sent it."""
    name = flow_cookie_name(request, provider, state or "")
    if state and name in request.cookies:
        _delete_cookie(request, response, name)


def _delete_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name,
        path="/",
        secure=not ctx(request).settings.development,
        httponly=True,
        samesite="lax",
    )


async def _disabled(request: Request, provider: str, *, portal: bool) -> Response:
    """ALLOW_SOCIAL_LOGIN=false: every provider route refuses, audited like any refusal."""
    await ctx(request).audit.record(
        "social_login_refused", ip=client_ip(request), outcome="social_login_disabled", provider=provider
    )
    error = DomainError(ErrorCode.SOCIAL_LOGIN_DISABLED, "Sign-in through an identity provider is disabled.")
    return failure(request, error, portal=portal, provider=provider)


async def begin(request: Request, flow: Flow) -> Response:
    """Moderation first, then the provider; the 302 carries the sealed flow."""
    context = ctx(request)
    provider = provider_named(request, flow.provider)
    if provider is None:
        raise ApiError(404, ErrorCode.NOT_FOUND, "This sign-in provider is not configured.")
    try:
        await context.protection.before_social_login(client_ip(request))
        url = await provider.authorization_url(flow)
    except DomainError as exc:
        return failure(request, exc, portal=flow.portal, provider=flow.provider)
    response = redirect(url, 302)
    _prune_flow_cookies(request, response)
    _set_flow_cookie(request, response, flow)
    return response


def _prune_flow_cookies(request: Request, response: Response) -> None:
    """Room for the new flow: stale or foreign flow cookies go, then the oldest beyond the cap."""
    prefix, sealer, now = _flow_cookie_prefix(request), _sealer(request), time.time()
    live: list[tuple[int, str]] = []
    for name, value in request.cookies.items():
        if not name.startswith(prefix):
            continue
        issued = sealer.issued_at(value)
        if issued is None or now - issued > FLOW_MAX_AGE_S:
            _delete_cookie(request, response, name)
        else:
            live.append((issued, name))
    live.sort(reverse=True)
    for _, name in live[MAX_OPEN_FLOWS - 1 :]:
        _delete_cookie(request, response, name)


async def openid_start(request: Request) -> Response:
    return await provider_start(request, PROVIDER)


async def openid_callback(request: Request) -> Response:
    return await provider_callback(request, PROVIDER)


async def google_start(request: Request) -> Response:
    return await provider_start(request, GOOGLE)


async def google_callback(request: Request) -> Response:
    return await provider_callback(request, GOOGLE)


async def github_start(request: Request) -> Response:
    return await provider_start(request, GITHUB)


async def github_callback(request: Request) -> Response:
    return await provider_callback(request, GITHUB)


async def discord_start(request: Request) -> Response:
    return await provider_start(request, "discord")


async def discord_callback(request: Request) -> Response:
    return await provider_callback(request, "discord")


async def facebook_start(request: Request) -> Response:
    return await provider_start(request, "facebook")


async def facebook_callback(request: Request) -> Response:
    return await provider_callback(request, "facebook")


async def provider_start(request: Request, name: str) -> Response:
    context = ctx(request)
    portal = request.query_params.get("portal") == "1"
    if not context.settings.allow_social_login:
        return await _disabled(request, name, portal=portal)
    rd = context.settings.redirects.checked(request.query_params.get("rd")) or ""
    if len(rd) > MAX_FLOW_RD:  # the sealed cookie must stay under the browsers' 4 KB
        rd = ""
    return await begin(request, new_flow(name, rd, portal=portal))


async def provider_callback(request: Request, name: str) -> Response:
    context = ctx(request)
    cookie = _flow_cookie(request, name, request.query_params.get("state"))
    if not context.settings.allow_social_login:
        return await _disabled(request, name, portal=False)
    provider = provider_named(request, name)
    if provider is None:
        raise ApiError(404, ErrorCode.NOT_FOUND, "This sign-in provider is not configured.")
    ip = client_ip(request)
    params = request.query_params
    portal = False
    try:
        flow = _sealer(request).open(cookie, params.get("state"), name)
        portal = flow.portal or flow.mode == MODE_LINK
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=FLOW_MAX_AGE_S * 2)
        if not await context.store.oauth_states.use(flow.state_hash, expires):
            raise FlowRefused("replayed")
        if params.get("error") or not params.get("code"):
            raise ProviderRefused(f"provider_error:{params.get('error', 'no_code')[:64]}")
        identity = await provider.finish(flow, params["code"], params.get("iss"))
        signin = OpenIdSignIn(
            provider.settings, _rules(request), context.accounts, context.sessions, context.audit
        )
        outcome = await signin.resolve(identity, flow, ip)
        user = outcome.user
        ban = context.protection.user_ban(user_id_of(user))
        if ban is not None:
            await context.audit.record("login_banned", user_id=user_id_of(user), ip=ip, outcome="refused")
            raise banned_error(ban)
    except (FlowRefused, ProviderRefused) as exc:
        LOGINS.labels("failure").inc()
        log.info("openid_sign_in_refused", reason=exc.reason)
        await context.audit.record("social_login_failed", ip=ip, outcome=exc.reason[:64], provider=name)
        return failure(request, exc, portal=portal, provider=name)
    except DomainError as exc:
        return failure(request, exc, portal=portal, provider=name)
    if flow.mode == MODE_LINK:
        response = redirect(LINKS_PATH + "?linked=1", 302)
        _clear_flow_cookie(request, response, name, flow.state)
        return response
    return await _signed_in(
        request, user, flow, identity.issuer, identity.subject, identity.id_claims.get("sid")
    )


def _flow_cookie(request: Request, provider: str, state: str | None) -> str | None:
    """The flow cookie of this callback's state. Without one, another flow's cookie of the same
    provider stands in, so the refusal says `state_mismatch` rather than `missing_flow_cookie`:
    it cannot open, since the state it carries differs."""
    own = request.cookies.get(flow_cookie_name(request, provider, state or ""))
    if own is not None:
        return own
    prefix = _flow_cookie_prefix(request, provider)
    return next((value for name, value in request.cookies.items() if name.startswith(prefix)), None)


def _rules(request: Request) -> Rules:
    settings = ctx(request).settings
    return Rules(
        allow_registration=settings.allow_social_registration,
        auto_link_verified=settings.social.auto_link_verified,
        allowed_domains=settings.social.registration_allowed_domains,
    )


async def _signed_in(
    request: Request, user: Document, flow: Flow, issuer: str, subject: str, sid: object
) -> Response:
    context = ctx(request)
    ip = client_ip(request)
    user_id = user_id_of(user)
    state = await context.sessions.state(user_id)
    after = flow.rd or context.settings.domain_client or "/portal/login"
    try:
        temp = await context.two_factor.begin_login(user, state.session_epoch, in_body=False, login_email="")
    except DomainError as exc:  # a LibreChat enrolment that cannot be checked here
        return failure(request, exc, portal=flow.portal, provider=flow.provider)
    if temp is not None:
        # The second factor is asked as after a password: at the portal's 2FA step.
        await context.audit.record("login_2fa_pending", user_id=user_id, ip=ip, provider=flow.provider)
        rd = flow.rd or context.settings.redirects.checked(context.settings.domain_client) or ""
        response = redirect("/portal/2fa" + (f"?{urlencode({'rd': rd})}" if rd else ""), 302)
        set_temp_cookie(context, response, temp)
        pending = PendingSignIn(
            user_id=user_id,
            provider=flow.provider,
            issuer=issuer,
            subject=subject,
            sid=sid if isinstance(sid, str) else "",
            portal=flow.portal,
            after=after,
            temp_digest=temp_digest(temp),
            issued_at=int(time.time()),
        )
        _set_pending_cookie(request, response, PendingSealer(context.settings.social.flow_key).seal(pending))
        _clear_flow_cookie(request, response, flow.provider, flow.state)
        return response
    signed_in = SignedIn(
        flow.provider, issuer, subject, sid if isinstance(sid, str) else "", flow.portal, after
    )
    response = await _start_federated_session(request, user, state.session_epoch, signed_in, (AMR_FEDERATED,))
    _clear_flow_cookie(request, response, flow.provider, flow.state)
    return response


@dataclass(frozen=True)
class SignedIn:
    """Who the provider said signed in, and where the browser goes next."""

    provider: str
    issuer: str
    subject: str
    sid: str
    portal: bool
    after: str


async def _start_federated_session(
    request: Request,
    user: Document,
    epoch: int,
    signed_in: SignedIn,
    amr: tuple[str, ...],
    status: int = 302,
) -> Response:
    """The session a provider sign-in starts, at the callback or after the portal's 2FA step:
    LibreChat's refresh cookie, the portal's session cookie for a portal flow, `sid`/`sub` kept."""
    context = ctx(request)
    ip = client_ip(request)
    user_id = user_id_of(user)
    try:
        session, refresh_token = await start_session(
            context, user, ip, user_agent(request), epoch=epoch, amr=amr
        )
    except StaleCredentials:
        return failure(
            request, ProviderRefused("stale"), portal=signed_in.portal, provider=signed_in.provider
        )
    await context.store.oidc_sessions.record(
        session.id, user_id, signed_in.issuer, signed_in.subject, signed_in.sid or None, session.expires_at
    )
    LOGINS.labels("success").inc()
    await context.audit.record(
        "social_login", user_id=user_id, ip=ip, session_id=session.id, provider=signed_in.provider
    )
    response = redirect(signed_in.after, status)
    set_session_cookies(context, response, refresh_token)
    if signed_in.portal:
        set_session_cookie(context, response, user, session)
    return response


def pending_cookie_name(request: Request) -> str:
    name = "authgate_fed2fa"  # not under the flow cookies' prefix: a new flow must not prune it
    return name if ctx(request).settings.development else "__Host-" + name


def _set_pending_cookie(request: Request, response: Response, sealed: str) -> None:
    response.set_cookie(
        pending_cookie_name(request),
        sealed,
        max_age=PENDING_MAX_AGE_S,
        path="/",
        secure=not ctx(request).settings.development,
        httponly=True,
        samesite="strict",  # read by the portal's own 2FA form, as the temp token's cookie
    )


def pending_sign_in(request: Request, temp_token: str, user_id: str) -> PendingSignIn | None:
    """The provider sign-in behind this temp token, if it was one (see social/pending.py)."""
    sealer = PendingSealer(ctx(request).settings.social.flow_key)
    return sealer.open(request.cookies.get(pending_cookie_name(request)), temp_token, user_id)


async def finish_after_two_factor(
    request: Request, user: Document, epoch: int, pending: PendingSignIn
) -> Response:
    """The portal's 2FA step passed for a provider sign-in: its session, as the callback's."""
    signed_in = SignedIn(
        pending.provider, pending.issuer, pending.subject, pending.sid, pending.portal, pending.after
    )
    amr = (AMR_FEDERATED, AMR_OTP)
    response = await _start_federated_session(request, user, epoch, signed_in, amr, status=303)
    _delete_pending_cookie(request, response)
    return response


def _delete_pending_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        pending_cookie_name(request),
        path="/",
        secure=not ctx(request).settings.development,
        httponly=True,
        samesite="strict",
    )


async def backchannel_logout(request: Request) -> Response:
    """OIDC Back-Channel Logout 1.0: a verified logout token ends the sessions it names."""
    context = ctx(request)
    provider = openid_provider(request)
    if provider is None:
        raise ApiError(404, ErrorCode.NOT_FOUND, "OpenID sign-in is not configured.")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise ApiError(415, ErrorCode.UNSUPPORTED_MEDIA_TYPE, "Send logout_token as a form.")
    try:
        token = fields(await request.body()).get("logout_token")
    except FormTooLarge:
        raise ApiError(413, ErrorCode.PAYLOAD_TOO_LARGE, "The logout token is too large.") from None
    if not isinstance(token, str) or not token:
        raise ApiError(400, ErrorCode.INVALID_REQUEST, "logout_token is required.")
    ip = client_ip(request)
    try:
        logout = await provider.verify_logout_token(token)
    except ProviderRefused as exc:
        log.info("backchannel_logout_refused", reason=exc.reason)
        await context.audit.record("backchannel_logout_refused", ip=ip, outcome=exc.reason)
        raise ApiError(400, ErrorCode.INVALID_REQUEST, "The logout token is not valid.") from None
    issuer = provider.settings.issuer
    if not await context.store.oauth_states.use_logout_token(issuer, logout.jti, logout.remember_until):
        log.info("backchannel_logout_refused", reason="replayed")
        await context.audit.record("backchannel_logout_refused", ip=ip, outcome="replayed")
        raise ApiError(400, ErrorCode.LOGOUT_TOKEN_REPLAYED, "This logout token was already used.")
    found = await context.store.oidc_sessions.find(issuer, sub=logout.sub, sid=logout.sid)
    by_user: dict[str, list[str]] = {}
    for doc in found:
        by_user.setdefault(str(doc["user_id"]), []).append(str(doc["_id"]))
    for user_id, session_ids in by_user.items():
        await context.sessions.revoke(
            user_id=user_id, session_ids=session_ids, reason="backchannel_logout", actor="openid"
        )
        await context.audit.record("backchannel_logout", user_id=user_id, sessions=len(session_ids))
    return Response(status_code=200, headers=NO_STORE)
