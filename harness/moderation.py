"""A moderation service for the tests that need one but do not test moderation itself."""

from __future__ import annotations

import atexit
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.processes import Server, free_port, start_service
from shared.moderation.policy import AUTH_KEY_SCOPES

AUTH_EVENT_SCOPES = AUTH_KEY_SCOPES  # what `make run` and the deploy docs give auth
# Limits no functional test reaches; the moderation tests start their own services with real ones.
GENEROUS_LIMITS = {
    "LOGIN_MAX": "1000000",
    "REGISTER_MAX": "1000000",
    "REFRESH_MAX": "1000000",
    "LOGIN_ACCOUNT_MAX": "100",
    "LOGIN_DEVICE_MAX": "100",
    "LOGIN_NET48_MAX": "1000000",
    "LOGOUT_MAX": "1000000",
    "RESET_PASSWORD_MAX": "1000000",
    "VERIFY_EMAIL_MAX": "1000000",
}


@dataclass
class ModerationHandle:
    server: Server
    report_key: str
    admin_key: str
    env: dict[str, str] = field(default_factory=dict)  # what it was started with (for a restart)

    def auth_env(self) -> dict[str, str]:
        """What an auth service needs to talk to this moderation service."""
        return {
            "MODERATION_URL": self.server.url,
            "MODERATION_API_KEY": self.report_key,
            # Two shared cores under a test load are slower than production; keep the fail mode rare.
            "MODERATION_TIMEOUT": "2000",
            **GENEROUS_LIMITS,
        }


def start_moderation(log_dir: Path, extra_env: Mapping[str, str] | None = None) -> ModerationHandle:
    report_key, admin_key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    port = free_port()
    env = {
        "AUTHGATE_ENV": "test",
        "MODERATION_PORT": str(port),
        "MODERATION_API_KEYS": f"auth:{AUTH_EVENT_SCOPES}:{report_key},cli:admin:{admin_key}",
        **GENEROUS_LIMITS,
        **(extra_env or {}),
    }
    server = start_service("services.moderation", port, env, log_dir / f"moderation-{port}.log")
    return ModerationHandle(server, report_key, admin_key, env)


def restart_moderation(handle: ModerationHandle) -> None:
    """Start a stopped moderation service again: same port, keys and settings, same log."""
    assert handle.server.proc.poll() is not None, "stop it first"
    handle.server = start_service(
        "services.moderation", handle.server.port, handle.env, handle.server.log_path
    )


_shared_moderation: ModerationHandle | None = None


def shared_moderation() -> ModerationHandle:
    """Started on first use, stopped when the test process exits."""
    global _shared_moderation
    if _shared_moderation is None or _shared_moderation.server.proc.poll() is not None:
        log_dir = Path(tempfile.mkdtemp(prefix="authgate-moderation-"))
        _shared_moderation = start_moderation(log_dir)
        atexit.register(_shared_moderation.server.stop)
    return _shared_moderation
