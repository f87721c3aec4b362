"""The start-up both services share: validate configuration, set up logging, serve two ports."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from shared.config import ConfigError, HttpLimits
from shared.logging import configure_logging
from shared.metrics import management_app, serve, uvicorn_config

Handler = Callable[[Request], Awaitable[Response]]


class ServiceSettings(Protocol):
    @property
    def development(self) -> bool: ...
    @property
    def log_level(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def management_host(self) -> str: ...
    @property
    def management_port(self) -> int: ...
    @property
    def http(self) -> HttpLimits: ...


S = TypeVar("S", bound=ServiceSettings)


def build_or_exit(load: Callable[[], S], create: Callable[[S], Starlette]) -> tuple[S, Starlette]:
    """Settings and app, or one `config error: VAR: message` line on stderr and exit 2."""
    try:
        settings = load()
        app = create(settings)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(json_output=not settings.development, level=settings.log_level)
    return settings, app


def run_service(
    load: Callable[[], S], create: Callable[[S], Starlette], healthz: Handler, readyz: Handler
) -> None:
    """Serve the public port and, unless its port is 0, the management port (metrics, probes)."""
    settings, app = build_or_exit(load, create)
    management = None
    if settings.management_port:
        admin = management_app(healthz, readyz)
        admin.state._state.update(app.state._state)  # the probes read the same context/store
        management = uvicorn_config(admin, settings.management_host, settings.management_port, lifespan="off")
    public = uvicorn_config(
        app,
        settings.host,
        settings.port,
        timeout_keep_alive=settings.http.keep_alive_timeout_s,
        limit_concurrency=settings.http.limit_concurrency,
    )
    serve(public, management)
