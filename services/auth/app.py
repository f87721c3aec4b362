"""create_app(settings): routes, middleware and the lifespan that opens the store."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import structlog
from pymongo.errors import PyMongoError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from services.auth import metrics
from services.auth.accounts import Accounts
from services.auth.api import auth, health, introspect, sessions, user, wellknown
from services.auth.api.openapi import openapi
from services.auth.api.verify import VerifyEndpoint, is_verify_path
from services.auth.audit import AuditTrail
from services.auth.context import AuthContext
from services.auth.keys import load_key_ring
from services.auth.passwords import Hasher, PasswordPolicy
from services.auth.revocations import RevocationCache
from services.auth.sessions import SessionPolicy, SessionService
from services.auth.settings import AuthSettings
from services.auth.store import Store
from services.auth.tokens import AccessTokens
from shared.errors import EXCEPTION_HANDLERS, StoreUnavailable
from shared.http import RequestIdMiddleware
from shared.metrics import MetricsMiddleware

log = structlog.get_logger("authgate.auth")


def build_context(settings: AuthSettings) -> AuthContext:
    ring = load_key_ring(
        settings.jwt_algorithm,
        settings.jwt_secret,
        settings.jwt_keys_dir,
        retired_window_s=settings.session_expiry_ms / 1000 + settings.jwks_max_age_s,
    )
    store = Store(settings.mongo_uri, settings.mongo_timeout_ms, settings.mongo_db)
    audit = AuditTrail(store)
    hasher = Hasher(settings.argon2, settings.hash_threads, settings.hash_queue)
    policy = PasswordPolicy(settings.min_password_length, settings.password_min_strength)
    session_policy = SessionPolicy(
        absolute_ms=settings.refresh_token_expiry_ms,
        idle_ms=settings.session_idle_timeout_ms,
        grace_ms=settings.refresh_grace_period_ms,
        max_per_user=settings.max_sessions_per_user,
        access_lifetime_ms=settings.session_expiry_ms,
    )
    sessions = SessionService(store, audit, settings.jwt_refresh_secret, session_policy)
    revocations = RevocationCache(
        store,
        poll_interval_s=settings.verify_max_staleness_ms / 1000 / 4,
        stale_grace_s=settings.verify_stale_grace_ms / 1000,
    )
    sessions.revocation_listeners.append(revocations.add_many)
    return AuthContext(
        settings=settings,
        store=store,
        audit=audit,
        accounts=Accounts(store, hasher, policy, audit),
        sessions=sessions,
        tokens=AccessTokens(ring, settings.jwt_issuer, settings.jwt_audience, settings.session_expiry_ms),
        revocations=revocations,
    )


class VerifyFastPath:
    """Send /verify straight to its lean endpoint, past the router and other middleware."""

    def __init__(self, app: ASGIApp, endpoint: VerifyEndpoint) -> None:
        self.app = app
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_verify_path(scope["path"]):
            await self.endpoint(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def routes() -> list[Route]:
    return [
        Route("/api/auth/register", auth.register, methods=["POST"]),
        Route("/api/auth/login", auth.login, methods=["POST"]),
        Route("/api/auth/refresh", auth.refresh, methods=["POST"]),
        Route("/api/auth/logout", auth.logout, methods=["POST"]),
        Route("/api/auth/sessions", sessions.list_sessions, methods=["GET"]),
        Route("/api/auth/sessions", sessions.revoke_other_sessions, methods=["DELETE"]),
        Route("/api/auth/sessions/{session_id}", sessions.revoke_session, methods=["DELETE"]),
        Route("/api/user", user.current_user, methods=["GET"]),
        Route("/api/config", user.config, methods=["GET"]),
        Route("/healthz", health.healthz, methods=["GET"]),
        Route("/readyz", health.readyz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/.well-known/jwks.json", wellknown.jwks, methods=["GET"]),
        Route("/api/auth/introspect", introspect.introspect, methods=["POST"]),
    ]


def create_app(settings: AuthSettings) -> Starlette:
    context = build_context(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await context.store.ensure_indexes(
                settings.audit_retention_days, settings.session_expiry_ms // 1000
            )
        except StoreUnavailable:
            log.warning("store_unavailable_at_start", detail="indexes will be created on the next start")
        try:
            await context.revocations.refresh_once()
        except PyMongoError:
            log.warning("revocations_not_loaded", detail="/verify answers 503 until the store answers")
        context.revocations.start()
        log.info("auth_started", env=settings.env, host=settings.host, port=settings.port)
        try:
            yield
        finally:
            await context.revocations.stop()
            context.accounts.hasher.close()
            await context.store.close()

    verify = VerifyEndpoint(
        context.tokens,
        context.revocations,
        lambda: None,
        settings.client_ip,
        settings.verify_header_prefix,
        settings.verify_log_sample,
        settings.verify_cache_size,
    )
    metrics.bind(verify, context.revocations)
    middleware = [
        Middleware(VerifyFastPath, endpoint=verify),
        Middleware(RequestIdMiddleware),
        Middleware(MetricsMiddleware, service="auth"),
    ]
    if settings.domain_client:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=[settings.domain_client],
                allow_credentials=True,
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["Authorization", "Content-Type", "X-Request-Id"],
            )
        )
    app = Starlette(
        routes=routes(),
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.ctx = context
    app.state.verify = verify
    return app
