"""The apps the moderation bench measures (uvicorn --factory targets): the service, bare, limits, hop."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.errors import EXCEPTION_HANDLERS
from shared.http import RequestIdMiddleware

EVENTS_PATH = "/v1/events"
HOP_PATH = "/hop"
BENCH_LIMITS = {
    "LOGIN_MAX": "1000000",
    "LOGIN_WINDOW": "5",
    "LOGIN_ACCOUNT_MAX": "100",
    "LOGIN_DEVICE_MAX": "100",
}


# The apps under test (uvicorn --factory targets) -------------------------------------------------


def moderation_app() -> Starlette:
    """The real service, configured from the environment like `python -m services.moderation`."""
    from services.moderation.app import create_app
    from services.moderation.settings import load_settings
    from shared.logging import configure_logging

    configure_logging(json_output=True, level="WARNING")
    return create_app(load_settings())


class PipelineLane:
    """The lane's job done by redis-py's own pipeline (bench only): what the hand-written lane saves."""

    def __init__(self, pool: object, size: int) -> None:
        import redis.asyncio as aioredis

        self._client = aioredis.Redis(connection_pool=pool)  # type: ignore[arg-type]

    async def execute(self, commands: list[list[str | int | float]]) -> list[object]:
        pipe = self._client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        replies: list[object] = await pipe.execute(raise_on_error=False)
        return replies

    async def close(self) -> None:
        await self._client.aclose()


def moderation_pipeline_app() -> Starlette:
    """The real service with redis-py's pipeline in place of the standalone store's lane."""
    from services.moderation import store_redis

    store_redis.Lane = PipelineLane  # type: ignore[misc, assignment]
    return moderation_app()


def bare_app() -> Starlette:
    """A bare POST endpoint: reads the body and answers a fixed JSON, no middleware."""

    async def events(request: Request) -> Response:
        await request.body()
        return JSONResponse({"allowed": True, "retry_after": 0, "limit": 7, "remaining": 6, "score": 0})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route(EVENTS_PATH, events, methods=["POST"]), Route("/healthz", health)])


def limits_app() -> Starlette:
    """The same workload through `limits`' moving window, sharing our auth and body parsing."""
    import redis.asyncio as aioredis
    from limits import RateLimitItemPerMinute
    from limits.aio.storage import RedisStorage
    from limits.aio.strategies import MovingWindowRateLimiter

    from services.moderation.api.schemas import EventIn
    from services.moderation.settings import SCOPES
    from shared.config import Env
    from shared.http import authenticate_service, parse_body, parse_service_keys
    from shared.moderation.policy import load_policy
    from shared.moderation.subjects import client_address

    env = Env.load()
    policy = load_policy(env)
    keys = parse_service_keys("MODERATION_API_KEYS", env.secret("MODERATION_API_KEYS"), SCOPES)
    uri = env.string("REDIS_URI") or ""
    storage = RedisStorage(f"async+{uri}", implementation="redispy")
    limiter = MovingWindowRateLimiter(storage)
    bans = aioredis.Redis.from_url(uri, decode_responses=True)
    login = policy.limits.login
    login_item = RateLimitItemPerMinute(login.max, max(1, login.window_ms // 60_000))
    score_item = RateLimitItemPerMinute(
        policy.bans.interval, max(1, policy.bans.violation_window_ms // 60_000)
    )

    async def events(request: Request) -> Response:
        authenticate_service(request, keys, "report")
        body = await parse_body(request, EventIn)
        subject = client_address(body.ip, policy.exempt).counted
        if await bans.exists(f"limits-ban:{subject}"):
            return JSONResponse(
                {"allowed": False, "retry_after": 1, "limit": login.max, "remaining": 0, "score": 0}
            )
        allowed = await limiter.hit(login_item, "login", subject)
        stats = await limiter.get_window_stats(login_item, "login", subject)
        if not allowed and not await limiter.hit(score_item, "score", subject, cost=policy.score("login")):
            await bans.set(f"limits-ban:{subject}", "1", px=policy.bans.duration_ms)
        retry = max(0, math.ceil(stats.reset_time - time.time())) if not allowed else 0
        return JSONResponse(
            {
                "allowed": allowed,
                "retry_after": retry,
                "limit": login.max,
                "remaining": stats.remaining,
                "score": 0,
            }
        )

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    # The same shell as the service (request ids, error handlers): only the limiter differs.
    return Starlette(
        routes=[Route(EVENTS_PATH, events, methods=["POST"]), Route("/healthz", health)],
        middleware=[Middleware(RequestIdMiddleware)],
        exception_handlers=EXCEPTION_HANDLERS,
    )


def hop_app() -> Starlette:
    """A tiny auth stand-in: every request asks moderation through the auth service's client."""
    from services.auth.moderation_client import ModerationClient
    from services.auth.moderation_client.settings import Transport, load_moderation_client_settings
    from shared.config import Env

    # The service's own settings loader: MODERATION_TIMEOUT keeps its shipped default, so a hop
    # that times out under load answers from the fallback (counted as an error) as it would in auth.
    loaded = load_moderation_client_settings(Env.load(), development=False)
    transport: Transport = "httpx" if os.environ.get("BENCH_TRANSPORT") == "httpx" else "aiohttp"
    settings = dataclasses.replace(loaded, transport=transport)
    client = ModerationClient(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await client.start()
        try:
            yield
        finally:
            await client.aclose()

    async def hop(request: Request) -> Response:
        body = json.loads(await request.body())
        decision = await client.event("login", ip=body["ip"])
        status = 200 if not decision.degraded else 503
        return JSONResponse(
            {"allowed": decision.allowed, "remaining": decision.remaining}, status_code=status
        )

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes = [Route(HOP_PATH, hop, methods=["POST"]), Route("/healthz", health)]
    return Starlette(routes=routes, lifespan=lifespan)
