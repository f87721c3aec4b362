"""create_app(settings): routes, middleware and the store's lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import structlog
from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.middleware import Middleware
from starlette.routing import Route

from services.moderation.api import audit, bans, events, health, openapi, violations
from services.moderation.metrics import PrometheusMetrics
from services.moderation.settings import ModerationSettings
from services.moderation.store_redis import RedisStore
from services.moderation.store_redis_cluster import RedisClusterStore
from shared.errors import EXCEPTION_HANDLERS
from shared.http import RequestIdMiddleware
from shared.metrics import MetricsMiddleware
from shared.moderation.engine import Engine
from shared.moderation.policy import EVENT_TYPES
from shared.moderation.store import Store
from shared.moderation.store_memory import MemoryStore

log = structlog.get_logger("authgate.moderation")


def make_store(settings: ModerationSettings) -> Store:
    bans = settings.policy.bans
    redis = settings.redis
    if redis is not None and redis.cluster:
        options = redis.options()
        return RedisClusterStore(
            redis.seeds, bans, settings.audit_max_len, settings.redis_prefix, options, redis.tls
        )
    if redis is not None:
        return RedisStore(redis.uris[0], bans, settings.audit_max_len, settings.redis_prefix, redis.options())
    return MemoryStore(bans, settings.audit_max_len)


class SubjectConvertor(Convertor[str]):
    """`kind:value`, slashes allowed (net:2001:db8::/64); never `check` or `changes` (GET-only siblings)."""

    regex = "[a-z]+:.+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("subject", SubjectConvertor())

ROUTES = [
    Route("/v1/events", events.post_event, methods=["POST"]),
    Route("/v1/violations", violations.post_violation, methods=["POST"]),
    Route("/v1/bans/check", bans.check, methods=["GET"]),
    Route("/v1/bans/changes", bans.changes, methods=["GET"]),
    Route("/v1/bans", bans.collection, methods=["GET", "POST"]),
    Route("/v1/bans/{subject:subject}", bans.delete_ban, methods=["DELETE"]),
    Route("/v1/audit", audit.audit_trail, methods=["GET"]),
    Route("/healthz", health.healthz, methods=["GET"]),
    Route("/readyz", health.readyz, methods=["GET"]),
    Route("/openapi.json", openapi.openapi, methods=["GET"]),
]


def create_app(settings: ModerationSettings, store: Store | None = None) -> Starlette:
    store = store if store is not None else make_store(settings)
    engine = Engine(store, settings.policy, PrometheusMetrics(settings.policy.limits.login_alarm_per_minute))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.open()
        if store.kind == "memory":
            log.warning(
                "embedded_store", detail="in-process store: it serves one replica only; set REDIS_URI"
            )
        reporters = [
            k.name for k in settings.keys if "report" in k.scopes and not k.scopes & set(EVENT_TYPES)
        ]
        if reporters:
            log.warning("keys_without_event_types", keys=sorted(set(reporters)))
        log.info("moderation_started", store=store.kind, keys=len(settings.keys))
        try:
            yield
        finally:
            await store.close()

    app = Starlette(
        routes=ROUTES,
        middleware=[Middleware(RequestIdMiddleware), Middleware(MetricsMiddleware, service="moderation")],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.keys = settings.keys
    app.state.settings = settings
    return app
