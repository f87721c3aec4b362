"""uvicorn factory for the auth service (`--factory bench.auth_app:create`).

The same steps as `python -m services.auth` minus `uvicorn.run`, so the bench
starts the service and the bare baseline with one identical uvicorn command line.
"""

from __future__ import annotations

from starlette.applications import Starlette

from services.auth.app import create_app
from services.auth.settings import load_settings
from shared.service import build_or_exit


def create() -> Starlette:
    _, app = build_or_exit(load_settings, create_app)
    return app
