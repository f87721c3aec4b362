"""The moderation client's settings: every MODERATION_* variable auth reads, checked once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from services.auth.moderation_client.fail_modes import (
    DEFAULT_FAIL_MODES,
    FailMode,
    fail_mode_of,
    parse_fail_modes,
)
from shared.config import ConfigError, Env, IPNetwork, exempt_networks
from shared.http import MIN_SERVICE_SECRET_BYTES
from shared.moderation.policy import Limits, load_limits

Transport = Literal["aiohttp", "httpx"]


@dataclass(frozen=True)
class ModerationClientSettings:
    url: str
    api_key: str | None
    timeout_ms: int = 200
    fail_modes: Mapping[str, FailMode] = field(default_factory=lambda: DEFAULT_FAIL_MODES)
    limits: Limits = field(default_factory=Limits)
    exempt: tuple[IPNetwork, ...] = ()
    poll_interval_ms: int = 500
    breaker_failures: int = 5
    breaker_reset_ms: int = 5000
    buffer_size: int = 1000
    transport: Transport = "aiohttp"

    def fail_mode(self, event_type: str) -> FailMode:
        return fail_mode_of(self.fail_modes, event_type)


def load_moderation_client_settings(env: Env, development: bool) -> ModerationClientSettings:
    """Called from the auth service's settings; every variable checked here, once."""
    url = env.string("MODERATION_URL")
    if url is None:
        if not development:
            raise ConfigError("MODERATION_URL", "is required outside development")
        url = f"http://127.0.0.1:{env.integer('MODERATION_PORT', 3081, minimum=1)}"
    if not url.startswith(("http://", "https://")):
        raise ConfigError("MODERATION_URL", f"must be an http(s) URL, got {url[:64]!r}")
    api_key = env.secret("MODERATION_API_KEY")
    if api_key is None and not development:
        raise ConfigError("MODERATION_API_KEY", "is required outside development (a report key)")
    if api_key is not None and len(api_key.encode()) < MIN_SERVICE_SECRET_BYTES:
        raise ConfigError("MODERATION_API_KEY", f"must be at least {MIN_SERVICE_SECRET_BYTES} bytes")
    return ModerationClientSettings(
        url=url.rstrip("/"),
        api_key=api_key,
        timeout_ms=env.duration_ms("MODERATION_TIMEOUT", "200"),
        fail_modes=parse_fail_modes("MODERATION_FAIL_MODE", env.string("MODERATION_FAIL_MODE")),
        limits=load_limits(env),
        exempt=exempt_networks(env),
    )
