"""`python -m services.moderation`: validate configuration, then serve with uvicorn."""

from __future__ import annotations

import sys

import uvicorn

from services.moderation.app import create_app
from services.moderation.settings import load_settings
from shared.config import ConfigError
from shared.logging import configure_logging


def main() -> None:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(json_output=not settings.development, level=settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        workers=1,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=10,
        h11_max_incomplete_event_size=16 * 1024,
    )


if __name__ == "__main__":
    main()
