"""create_app(settings): routes, middleware and the lifespan that opens the store."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route

from services.auth.accounts import Accounts
from services.auth.api import auth, health, sessions, user
from services.auth.api.openapi import openapi
from services.auth.audit import AuditTrail
from services.auth.context import AuthContext
from services.auth.passwords import Hasher, PasswordPolicy
from services.auth.sessions import SessionPolicy, SessionService
from services.auth.settings import AuthSettings
from services.auth.store import Store
from services.auth.tokens import AccessTokens
from shared.errors import EXCEPTION_HANDLERS, StoreUnavailable
from shared.http import RequestIdMiddleware

log = structlog.get_logger("authgate.auth")


def build_context(settings: AuthSettings) -> AuthContext:
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
    return AuthContext(
        settings=settings,
        store=store,
        audit=audit,
        accounts=Accounts(store, hasher, policy, audit),
        sessions=SessionService(store, audit, settings.jwt_refresh_secret, session_policy),
        tokens=AccessTokens(
            settings.jwt_secret, settings.jwt_issuer, settings.jwt_audience, settings.session_expiry_ms
        ),
    )


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
        log.info("auth_started", env=settings.env, host=settings.host, port=settings.port)
        try:
            yield
        finally:
            context.accounts.hasher.close()
            await context.store.close()

    middleware = [Middleware(RequestIdMiddleware)]
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
    return app
