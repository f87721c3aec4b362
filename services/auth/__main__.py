"""`python -m services.auth`: validate configuration, then serve the public and management ports."""

from __future__ import annotations

from services.auth.api import health
from services.auth.app import create_app
from services.auth.settings import load_settings
from shared.service import run_service


def main() -> None:
    run_service(load_settings, create_app, health.healthz, health.readyz)


if __name__ == "__main__":
    main()
