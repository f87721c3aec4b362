"""`python -m services.moderation`: validate configuration, then serve the public and management ports."""

from __future__ import annotations

import sys

from services.moderation.api import health
from services.moderation.app import create_app
from services.moderation.settings import load_settings
from shared.config import ConfigError
from shared.logging import configure_logging
from shared.metrics import management_app, serve, uvicorn_config


def main() -> None:
    try:
        settings = load_settings()
        app = create_app(settings)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(json_output=not settings.development, level=settings.log_level)
    management = None
    if settings.management_port:
        admin = management_app(health.healthz, health.readyz)
        admin.state.engine = app.state.engine  # readyz reads the same store
        management = uvicorn_config(admin, settings.management_host, settings.management_port, lifespan="off")
    serve(uvicorn_config(app, settings.host, settings.port), management)


if __name__ == "__main__":
    main()
