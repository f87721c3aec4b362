"""Every moderation-service variable, parsed and checked once at startup."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from services.moderation.redis_config import RedisConfig, load_redis_config
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
    redis_uri: str | None  # the one URI, or a cluster's first seed
    redis_prefix: str
    redis: RedisConfig | None
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


PREFIX_CHARACTERS = "_.:-"


def load_prefix(env: Env) -> str:
    """`MODERATION_REDIS_PREFIX`, or LibreChat's `REDIS_KEY_PREFIX`; both set must agree."""
    own, librechat = env.string("MODERATION_REDIS_PREFIX"), env.string("REDIS_KEY_PREFIX")
    if own is not None and librechat is not None and own != librechat:
        raise ConfigError("REDIS_KEY_PREFIX", "differs from MODERATION_REDIS_PREFIX; set one of them")
    name = "MODERATION_REDIS_PREFIX" if own is not None else "REDIS_KEY_PREFIX"
    prefix = own or librechat or "mod"
    if not all(c.isalnum() or c in PREFIX_CHARACTERS for c in prefix):
        raise ConfigError(name, "use letters, digits and _ . : - only")
    return prefix


def load_settings(env: Env | None = None, root: Path | None = None) -> ModerationSettings:
    env = env if env is not None else Env.load(root if root is not None else Path.cwd())
    mode = environment(env)
    development = mode == DEVELOPMENT
    redis = load_redis_config(env)
    redis_uri = redis.uris[0] if redis is not None else None
    replicas_shared = env.boolean("MODERATION_REPLICAS_SHARED", False)
    if replicas_shared and redis_uri is None:
        raise ConfigError(
            "MODERATION_REPLICAS_SHARED",
            "is true but REDIS_URI is unset: the embedded store serves one replica only",
        )
    keys = parse_service_keys("MODERATION_API_KEYS", env.secret("MODERATION_API_KEYS"), SCOPES)
    if not keys and not development:
        raise ConfigError("MODERATION_API_KEYS", "is required outside development (name:scope:secret, ...)")
    prefix = load_prefix(env)
    return ModerationSettings(
        env=mode,
        host=env.string("MODERATION_HOST", "127.0.0.1") or "127.0.0.1",
        port=env.integer("MODERATION_PORT", 3081, minimum=0),
        redis_uri=redis_uri,
        redis_prefix=prefix,
        redis=redis,
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
