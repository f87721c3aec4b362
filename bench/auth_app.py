"""uvicorn factory for the auth service (`--factory bench.auth_app:create`).

The same steps as `python -m services.auth` minus `uvicorn.run`, so the bench
starts the service and the bare baseline with one identical uvicorn command line.
"""

from __future__ import annotations

import sys

from starlette.applications import Starlette

from services.auth.app import create_app
from services.auth.settings import load_settings
from shared.config import ConfigError
from shared.logging import configure_logging


def create() -> Starlette:
    try:
        settings = load_settings()
        app = create_app(settings)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(json_output=not settings.development, level=settings.log_level)
    return app
