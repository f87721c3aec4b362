"""Every moderation-service variable, parsed and checked once at startup."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis

from shared.config import DEVELOPMENT, ConfigError, Env, HttpLimits, environment, load_http_limits
from shared.http import ServiceKey, parse_service_keys
from shared.moderation.policy import EVENT_TYPES, Policy, load_policy

# `report` reads (checks, ban list, change feed); each event type a key may report is a
# scope of its own; `report-user` lets a key score `user:` subjects; `admin` may do all.
SCOPES = frozenset({"report", "report-user", "admin", *EVENT_TYPES})


@dataclass(frozen=True)
class ModerationSettings:
    env: str
    host: str
    port: int
    redis_uri: str | None
    redis_prefix: str
    replicas_shared: bool
    keys: tuple[ServiceKey, ...]
    policy: Policy
    audit_max_len: int
    log_level: str = "INFO"
    management_host: str = "127.0.0.1"
    management_port: int = 9081
    http: HttpLimits = field(default_factory=HttpLimits)

    @property
    def development(self) -> bool:
        return self.env == DEVELOPMENT


def check_redis_uri(uri: str, use_cluster: bool) -> None:
    """One `REDIS_URI: ...` line for anything redis-py would only reject later with a traceback.

    A comma-separated list (or USE_REDIS_CLUSTER) is how LibreChat asks for Redis Cluster; until
    cluster support exists that is refused at startup, by name. The URI may hold a password, so
    no message ever repeats it.
    """
    if "," in uri or use_cluster:
        raise ConfigError(
            "REDIS_URI",
            "Redis Cluster mode (a comma-separated list or USE_REDIS_CLUSTER) is not supported yet; "
            "give one redis:// URI",
        )
    if not uri.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("REDIS_URI", "must start with redis://, rediss:// or unix://")
    try:
        aioredis.ConnectionPool.from_url(uri)  # parses only; connects on first use
    except (ValueError, TypeError):
        raise ConfigError(
            "REDIS_URI", "is not a valid Redis URL (host, port or database unreadable)"
        ) from None


def load_settings(env: Env | None = None, root: Path | None = None) -> ModerationSettings:
    env = env if env is not None else Env.load(root if root is not None else Path.cwd())
    mode = environment(env)
    development = mode == DEVELOPMENT
    redis_uri = env.secret("REDIS_URI")
    if redis_uri is not None:
        check_redis_uri(redis_uri, env.boolean("USE_REDIS_CLUSTER", False))
    replicas_shared = env.boolean("MODERATION_REPLICAS_SHARED", False)
    if replicas_shared and redis_uri is None:
        raise ConfigError(
            "MODERATION_REPLICAS_SHARED",
            "is true but REDIS_URI is unset: the embedded store serves one replica only",
        )
    keys = parse_service_keys("MODERATION_API_KEYS", env.secret("MODERATION_API_KEYS"), SCOPES)
    if not keys and not development:
        raise ConfigError("MODERATION_API_KEYS", "is required outside development (name:scope:secret, ...)")
    prefix = env.string("MODERATION_REDIS_PREFIX", "mod") or "mod"
    if not all(c.isalnum() or c in "_.:-" for c in prefix):
        raise ConfigError("MODERATION_REDIS_PREFIX", "use letters, digits and _ . : - only")
    return ModerationSettings(
        env=mode,
        host=env.string("MODERATION_HOST", "127.0.0.1") or "127.0.0.1",
        port=env.integer("MODERATION_PORT", 3081, minimum=0),
        redis_uri=redis_uri,
        redis_prefix=prefix,
        replicas_shared=replicas_shared,
        keys=keys,
        policy=load_policy(env),
        audit_max_len=env.integer("MODERATION_AUDIT_MAX_LEN", 100_000, minimum=1),
        log_level=env.choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
        management_host=env.string("MODERATION_MANAGEMENT_HOST")
        or env.string("MODERATION_HOST", "127.0.0.1")
        or "127.0.0.1",
        management_port=env.integer("MODERATION_MANAGEMENT_PORT", 9081, minimum=0),
        http=load_http_limits(env),
    )
