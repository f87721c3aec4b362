"""create_app(settings): routes, middleware and the lifespan that opens the store."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from services.auth import metrics
from services.auth.api import (
    account_links,
    auth,
    cookies,
    health,
    introspect,
    oauth,
    password,
    portal,
    portal_account,
    portal_passkeys,
    portal_recovery,
    portal_register,
    portal_step_up,
    refusals,
    sessions,
    two_factor,
    user,
    verification,
    webauthn,
    wellknown,
)
from services.auth.api.forward_auth import ForwardAuthEndpoint
from services.auth.api.openapi import openapi
from services.auth.api.verify import BanNotice, VerifyEndpoint, is_forward_auth_path, is_verify_path
from services.auth.context import AuthContext, build_context
from services.auth.moderation_client import BanInfo, ModerationClient
from services.auth.portal.csrf import CsrfTokens
from services.auth.portal.render import PortalPages
from services.auth.protection import banned_error
from services.auth.sessions import RevokedByBan
from services.auth.settings import AuthSettings
from services.auth.social.providers import SignInProvider, build_provider
from services.auth.store import StoreFailure
from shared.errors import EXCEPTION_HANDLERS, ErrorBoundary, StoreUnavailable, api_error_of, error_response
from shared.http import RequestIdMiddleware
from shared.metrics import MetricsMiddleware

log = structlog.get_logger("authgate.auth")


class BanCacheView:
    """/verify's view of moderation's bans: the client's in-memory cache, no network call."""

    def __init__(self, client: ModerationClient) -> None:
        self._client = client

    @property
    def has_bans(self) -> bool:
        return self._client.has_bans

    def ban_for(self, ip: str | None, user_id: str | None) -> BanNotice | None:
        ban = self._client.is_banned(ip=ip, user_id=user_id)
        if ban is None:
            return None
        return BanNotice(ban.subject, ban.reason, ban.expires_at_iso(), max(1, ban.retry_after()))


# Routes that a banned IP may still reach: probes, public documents, and the way out (logout
# refuses a banned address itself, from memory, unless its access token verifies).
IP_BAN_EXEMPT = frozenset(
    {
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/.well-known/jwks.json",
        "/api/auth/logout",
        "/oauth/openid/backchannel-logout",  # a provider's logout (signed token) is never blocked
        "/portal/static/portal.css",  # so the portal's banned page is styled
    }
)


PORTAL_PREFIX = "/portal/"
PORTAL_PASSKEYS = "/portal/passkeys/"


class IpBanMiddleware:
    """403 `banned` (reason, expires_at, Retry-After) for a banned client IP on every other route."""

    def __init__(self, app: ASGIApp, context: AuthContext) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        protection = self.context.protection
        if scope["type"] == "http" and protection.client.has_bans and scope["path"] not in IP_BAN_EXEMPT:
            request = Request(scope)
            ban = protection.ip_ban(self.context.settings.client_ip.from_request(request))
            page = scope["path"].startswith(PORTAL_PREFIX) and not scope["path"].startswith(PORTAL_PASSKEYS)
            if ban is not None and page:  # the passkeys script's JSON endpoints answer JSON
                await portal.banned_page(request, banned_error(ban))(scope, receive, send)
                return
            if ban is not None:
                error = api_error_of(banned_error(ban))
                response = error_response(error.status, error.code, error.message, error.headers, error.extra)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _revoke_banned_user(context: AuthContext, user_id: str, ban: BanInfo) -> None:
    """A user ban ends the sessions opened before it began (through the one revocation function),
    once per ban; this runs in the background, possibly after the ban was lifted."""
    in_force = context.protection.client.is_banned(user_id=user_id) is not None
    revoked = await context.sessions.revoke_for_ban(
        user_id, RevokedByBan(ban.reason, ban.expires_at), ban.created_at, in_force=in_force
    )
    if revoked is not None:
        log.info("user_ban_applied", user_id=user_id, sessions=revoked, expires_at=ban.expires_at_iso())


class VerifyFastPath:
    """Send /verify and /forward-auth straight to their lean endpoints, past the router."""

    def __init__(self, app: ASGIApp, endpoint: VerifyEndpoint, forward_auth: VerifyEndpoint) -> None:
        self.app = app
        self.endpoint = endpoint
        self.forward_auth = forward_auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_verify_path(scope["path"]):
            await self.endpoint(scope, receive, send)
        elif scope["type"] == "http" and is_forward_auth_path(scope["path"]):
            await self.forward_auth(scope, receive, send)
        else:
            await self.app(scope, receive, send)


WEBAUTHN = "/api/auth/webauthn"
WEBAUTHN_ROUTES = [
    Route(f"{WEBAUTHN}/register/options", webauthn.register_options, methods=["POST"]),
    Route(f"{WEBAUTHN}/register/verify", webauthn.register_verify, methods=["POST"]),
    Route(f"{WEBAUTHN}/login/options", webauthn.login_options, methods=["POST"]),
    Route(f"{WEBAUTHN}/login/verify", webauthn.login_verify, methods=["POST"]),
    Route(f"{WEBAUTHN}/credentials", webauthn.list_credentials, methods=["GET"]),
    Route(f"{WEBAUTHN}/credentials/{{passkey_id}}", webauthn.rename_credential, methods=["PATCH"]),
    Route(f"{WEBAUTHN}/credentials/{{passkey_id}}", webauthn.delete_credential, methods=["DELETE"]),
]


PORTAL_PASSKEY_ROUTES = [
    Route(f"{PORTAL_PASSKEYS}login/options", portal_passkeys.login_options, methods=["POST"]),
    Route(f"{PORTAL_PASSKEYS}login/verify", portal_passkeys.login_verify, methods=["POST"]),
    Route(f"{PORTAL_PASSKEYS}register/options", portal_passkeys.register_options, methods=["POST"]),
    Route(f"{PORTAL_PASSKEYS}register/verify", portal_passkeys.register_verify, methods=["POST"]),
    Route("/portal/account/passkeys", portal_passkeys.account_page, methods=["GET"]),
    Route("/portal/account/passkeys/{passkey_id}/rename", portal_passkeys.rename_submit, methods=["POST"]),
    Route("/portal/account/passkeys/{passkey_id}/remove", portal_passkeys.remove_submit, methods=["POST"]),
    Route("/portal/static/passkeys.js", portal_passkeys.script, methods=["GET"]),
]


def routes() -> list[Route]:
    return [
        Route("/api/auth/register", auth.register, methods=["POST"]),
        Route("/api/auth/login", auth.login, methods=["POST"]),
        Route("/api/auth/refresh", auth.refresh, methods=["POST"]),
        Route("/api/auth/logout", auth.logout, methods=["POST"]),
        Route("/api/auth/requestPasswordReset", password.request_password_reset, methods=["POST"]),
        Route("/api/auth/resetPassword", password.reset_password, methods=["POST"]),
        Route("/api/auth/password", password.change_password, methods=["POST"]),
        Route("/api/auth/2fa/enable", two_factor.enable, methods=["GET", "POST"]),
        Route("/api/auth/2fa/confirm", two_factor.confirm, methods=["POST"]),
        Route("/api/auth/2fa/verify", two_factor.verify, methods=["POST"]),
        Route("/api/auth/2fa/disable", two_factor.disable, methods=["POST"]),
        Route("/api/auth/2fa/backup/regenerate", two_factor.regenerate_backup_codes, methods=["POST"]),
        Route("/api/auth/2fa/verify-temp", two_factor.verify_temp, methods=["POST"]),
        *WEBAUTHN_ROUTES,
        Route("/api/auth/sessions", sessions.list_sessions, methods=["GET"]),
        Route("/api/auth/sessions", sessions.revoke_other_sessions, methods=["DELETE"]),
        Route("/api/auth/sessions/{session_id}", sessions.revoke_session, methods=["DELETE"]),
        Route("/api/user", user.current_user, methods=["GET"]),
        Route("/api/config", user.config, methods=["GET"]),
        Route("/api/user/verify", verification.verify_email, methods=["POST"]),
        Route("/api/user/verify/resend", verification.resend_verification, methods=["POST"]),
        Route("/healthz", health.healthz, methods=["GET"]),
        Route("/readyz", health.readyz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/.well-known/jwks.json", wellknown.jwks, methods=["GET"]),
        Route("/api/auth/introspect", introspect.introspect, methods=["POST"]),
        Route("/portal/login", portal.login_page, methods=["GET"]),
        Route("/portal/login", portal.login_submit, methods=["POST"]),
        Route("/portal/2fa", portal.two_factor_page, methods=["GET"]),
        Route("/portal/2fa", portal.two_factor_submit, methods=["POST"]),
        Route("/portal/step-up", portal_step_up.step_up_page, methods=["GET"]),
        Route("/portal/step-up", portal_step_up.step_up_submit, methods=["POST"]),
        Route("/portal/logout", portal.logout_page, methods=["GET"]),
        Route("/portal/logout", portal.logout_submit, methods=["POST"]),
        Route("/portal/static/portal.css", portal.stylesheet, methods=["GET"]),
        Route("/portal/register", portal_register.register_page, methods=["GET"]),
        Route("/portal/register", portal_register.register_submit, methods=["POST"]),
        Route("/portal/forgot", portal_recovery.forgot_page, methods=["GET"]),
        Route("/portal/forgot", portal_recovery.forgot_submit, methods=["POST"]),
        Route("/portal/reset-password", portal_recovery.reset_page, methods=["GET"]),
        Route("/portal/reset-password", portal_recovery.reset_submit, methods=["POST"]),
        Route("/portal/verify-email", portal_recovery.verify_page, methods=["GET"]),
        Route("/portal/verify-email", portal_recovery.verify_submit, methods=["POST"]),
        Route("/portal/account", portal_account.account_page, methods=["GET"]),
        Route("/portal/account/sessions/end", portal_account.end_session, methods=["POST"]),
        Route("/portal/account/password", portal_account.change_password, methods=["POST"]),
        Route("/portal/account/2fa/start", portal_account.start_two_factor, methods=["POST"]),
        Route("/portal/account/2fa/confirm", portal_account.confirm_two_factor, methods=["POST"]),
        Route("/portal/account/2fa/disable", portal_account.disable_two_factor, methods=["POST"]),
        *PORTAL_PASSKEY_ROUTES,
        Route("/oauth/openid", oauth.openid_start, methods=["GET"]),
        Route("/oauth/openid/callback", oauth.openid_callback, methods=["GET"]),
        Route("/oauth/openid/backchannel-logout", oauth.backchannel_logout, methods=["POST"]),
        Route("/oauth/google", oauth.google_start, methods=["GET"]),
        Route("/oauth/google/callback", oauth.google_callback, methods=["GET"]),
        Route("/oauth/github", oauth.github_start, methods=["GET"]),
        Route("/oauth/github/callback", oauth.github_callback, methods=["GET"]),
        Route("/oauth/discord", oauth.discord_start, methods=["GET"]),
        Route("/oauth/discord/callback", oauth.discord_callback, methods=["GET"]),
        Route("/oauth/facebook", oauth.facebook_start, methods=["GET"]),
        Route("/oauth/facebook/callback", oauth.facebook_callback, methods=["GET"]),
        Route("/portal/account/links", account_links.links_page, methods=["GET"]),
        Route("/portal/account/links", account_links.links_submit, methods=["POST"]),
    ]


def _providers(settings: AuthSettings) -> dict[str, SignInProvider]:
    """A client per configured provider (OPENID_*, GOOGLE_*, GITHUB_*); OpenID metadata is
    fetched on first use."""
    server = settings.domain_server or ""
    return {p.name: build_provider(p, server) for p in settings.social.providers}


def _buttons(settings: AuthSettings) -> list[dict[str, str]]:
    """The portal's sign-in buttons, in SOCIAL_LOGINS order."""
    if not settings.allow_social_login:
        return []
    labels = {
        "openid": settings.openid_button_label,
        "google": "Continue with Google",
        "github": "Continue with GitHub",
        "discord": "Continue with Discord",
        "facebook": "Continue with Facebook",
    }
    configured = set(settings.social.configured)
    return [
        {"provider": name, "label": labels[name]}
        for name in settings.social.social_logins
        if name in configured and name in labels
    ]


def create_app(settings: AuthSettings) -> Starlette:
    context = build_context(settings)
    providers = _providers(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await context.store.ensure_indexes(settings.audit_retention_days)
        except StoreUnavailable:
            log.warning("store_unavailable_at_start", detail="indexes will be created on the next start")
        try:
            await context.revocations.refresh_once()
        except (StoreUnavailable, StoreFailure):
            log.warning("revocations_not_loaded", detail="/verify answers 503 until the store answers")
        context.revocations.start()
        client = context.protection.client
        client.on_user_ban(lambda user_id, ban: _revoke_banned_user(context, user_id, ban))
        await client.start()
        context.outbox.start()  # only when mail is configured
        log.info("auth_started", env=settings.env, host=settings.host, port=settings.port)
        try:
            yield
        finally:
            await context.outbox.stop()
            for provider in providers.values():
                await provider.aclose()
            await client.aclose()
            await context.revocations.stop()
            context.accounts.hasher.close()
            await context.store.close()

    ban_view = BanCacheView(context.protection.client)
    endpoint_args = (
        context.tokens,
        context.revocations,
        lambda: ban_view,
        settings.client_ip,
        settings.verify_header_prefix,
        settings.verify_log_sample,
        settings.verify_cache_size,
        context.session_cookies,
        settings.session_cookie_name,
    )
    verify = VerifyEndpoint(*endpoint_args)
    forward_auth = ForwardAuthEndpoint(
        *endpoint_args, portal_url=settings.domain_server, proxies=settings.client_ip
    )
    metrics.bind(verify, context.revocations, context.protection.client)
    # CORS wraps every refusal (IP ban, unexpected error) so the browser app can read it.
    middleware = [
        Middleware(VerifyFastPath, endpoint=verify, forward_auth=forward_auth),
        Middleware(RequestIdMiddleware),
        Middleware(MetricsMiddleware, service="auth"),
    ]
    if settings.domain_client:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=[settings.domain_client],
                allow_credentials=True,
                allow_methods=["GET", "POST", "PATCH", "DELETE"],
                allow_headers=["Authorization", "Content-Type", "X-Request-Id"],
            )
        )
    middleware += [Middleware(ErrorBoundary), Middleware(IpBanMiddleware, context=context)]
    app = Starlette(
        routes=routes(),
        middleware=middleware,
        exception_handlers={**EXCEPTION_HANDLERS, **refusals.HANDLERS, **cookies.HANDLERS},
        lifespan=lifespan,
    )
    app.state.ctx = context
    app.state.verify = verify
    app.state.providers = providers
    app.state.portal_pages = PortalPages(
        settings.app_title,
        registration=settings.allow_registration,
        password_reset=settings.allow_password_reset,
        social_buttons=_buttons(settings),
    )
    app.state.portal_csrf = CsrfTokens(settings.jwt_secret)
    return app
