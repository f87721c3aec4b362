"""Prometheus metrics and the management listener both services expose.

Metrics live on a separate port (AUTH_MANAGEMENT_PORT / MODERATION_MANAGEMENT_PORT)
that the public Service does not expose. Labels are route templates, methods and
status codes only: never an email, IP or user id.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter(
    "authgate_http_requests_total",
    "HTTP requests by route template and status",
    ["service", "route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "authgate_http_request_duration_seconds",
    "HTTP request latency by route template",
    ["service", "route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
STORE_ERRORS = Counter(
    "authgate_store_errors_total", "Store calls that failed for availability reasons", ["service"]
)


class MetricsMiddleware:
    """Count and time every request by its route template (not its raw path)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            HTTP_REQUESTS.labels(self.service, template, method, str(status)).inc()
            HTTP_LATENCY.labels(self.service, template, method).observe(time.perf_counter() - started)


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def management_app(
    healthz: Callable[[Request], Awaitable[Response]], readyz: Callable[[Request], Awaitable[Response]]
) -> Starlette:
    """/metrics plus the same health endpoints as the public port (probes may use either)."""
    return Starlette(
        routes=[
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ]
    )


def uvicorn_config(app: ASGIApp, host: str, port: int, **extra: object) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=10,
        h11_max_incomplete_event_size=16 * 1024,
        **extra,  # type: ignore[arg-type]
    )


class _FollowerServer(uvicorn.Server):
    """The management listener: the public server owns the signal handlers and stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve(public: uvicorn.Config, management: uvicorn.Config | None) -> None:
    """Run the public and management listeners in one process; SIGTERM drains both."""
    public_server = uvicorn.Server(public)
    if management is None:
        public_server.run()
        return
    management_server = _FollowerServer(management)

    async def run_both() -> None:
        side = asyncio.create_task(management_server.serve())
        try:
            await public_server.serve()
        finally:
            management_server.should_exit = True
            await side

    asyncio.run(run_both())
