"""LibreChat's Redis variables, read once: one URI or a Cluster's seed nodes, credentials, CA file.

LibreChat's rules: `REDIS_URI` lists one URI, or several separated by commas (then it is a
Redis Cluster, whatever `USE_REDIS_CLUSTER` says); `USE_REDIS_CLUSTER=true` makes even one URI
a cluster seed. `REDIS_USERNAME`/`REDIS_PASSWORD` apply when the URIs carry no credentials, and
`REDIS_CA` is the CA file for `rediss://`. Anything redis-py would only reject later, with a
traceback or on the first request, stops startup here with one line naming the variable. A URI
may hold a password, so no message ever repeats one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis

from shared.config import ConfigError, Env

SCHEMES = ("redis://", "rediss://", "unix://")
CLUSTER_SCHEMES = ("redis", "rediss")


@dataclass(frozen=True)
class RedisConfig:
    """Where the store lives: `uris[0]` alone, or a Cluster found through every seed in `uris`."""

    uris: tuple[str, ...]
    cluster: bool
    seeds: tuple[tuple[str, int], ...] = ()  # cluster mode only
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None

    @property
    def tls(self) -> bool:
        return self.uris[0].startswith("rediss://")

    def options(self) -> dict[str, Any]:
        """Connection keywords the URI does not carry (credentials, CA); empty when none are set."""
        options: dict[str, Any] = {}
        if self.username is not None:
            options["username"] = self.username
        if self.password is not None:
            options["password"] = self.password
        if self.ca_file is not None:
            options["ssl_ca_certs"] = self.ca_file
        return options


def _check_standalone(uri: str) -> None:
    if not uri.startswith(SCHEMES):
        raise ConfigError("REDIS_URI", "must start with redis://, rediss:// or unix://")
    try:
        aioredis.ConnectionPool.from_url(uri)  # parses only; connects on first use
    except (ValueError, TypeError):
        raise ConfigError(
            "REDIS_URI", "is not a valid Redis URL (host, port or database unreadable)"
        ) from None


def _seed(uri: str, position: int) -> tuple[str, int, str | None, str | None]:
    """(host, port, username, password) of one seed node; the message names its position only."""
    where = f"entry {position} of the list"
    parts = urlsplit(uri)
    if parts.scheme not in CLUSTER_SCHEMES:
        raise ConfigError("REDIS_URI", f"{where}: cluster seeds are redis:// or rediss:// URIs")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ConfigError("REDIS_URI", f"{where}: the port is not a number from 1 to 65535") from None
    if not host:
        raise ConfigError("REDIS_URI", f"{where}: no host")
    if parts.path not in ("", "/", "/0") or parts.query:
        raise ConfigError("REDIS_URI", f"{where}: a Redis Cluster has database 0 only and takes no options")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return host, port or 6379, username, password


def _cluster(uris: list[str]) -> tuple[tuple[tuple[str, int], ...], str | None, str | None]:
    seeds = [_seed(uri, i + 1) for i, uri in enumerate(uris)]
    if len({urlsplit(uri).scheme for uri in uris}) > 1:
        raise ConfigError("REDIS_URI", "mixes redis:// and rediss:// seeds; a cluster uses one or the other")
    if len({(user, password) for _, _, user, password in seeds}) > 1:
        raise ConfigError("REDIS_URI", "the seeds carry different credentials; one cluster has one")
    _, _, username, password = seeds[0]
    return tuple((host, port) for host, port, _, _ in seeds), username, password


def _credentials(env: Env, in_uri: tuple[str | None, str | None]) -> tuple[str | None, str | None]:
    """REDIS_USERNAME/REDIS_PASSWORD, unless the URI already names other ones (a conflict)."""
    # Both may come from files (`REDIS_USERNAME_FILE`, `REDIS_PASSWORD_FILE`: a Kubernetes Secret).
    username, password = env.secret("REDIS_USERNAME"), env.secret("REDIS_PASSWORD")
    if username is not None and password is None and in_uri[1] is None:
        raise ConfigError("REDIS_PASSWORD", "is unset while REDIS_USERNAME is set; give both")
    for name, given, carried in (
        ("REDIS_USERNAME", username, in_uri[0]),
        ("REDIS_PASSWORD", password, in_uri[1]),
    ):
        if given is not None and carried is not None and given != carried:
            raise ConfigError(name, "differs from the one REDIS_URI carries; set it in one place")
    return username if in_uri[0] is None else None, password if in_uri[1] is None else None


def _ca_file(env: Env, tls: bool) -> str | None:
    ca = env.string("REDIS_CA")
    if ca is None:
        return None
    if not tls:
        raise ConfigError("REDIS_CA", "is set but REDIS_URI does not use rediss://")
    path = Path(ca)
    if not path.is_file():
        raise ConfigError("REDIS_CA", f"{ca} is not a readable file")
    return str(path)


def load_redis_config(env: Env) -> RedisConfig | None:
    """None when no Redis is configured (the embedded store); refuses a half-configured cluster."""
    raw = env.secret("REDIS_URI")
    use_cluster = env.boolean("USE_REDIS_CLUSTER", False)
    if raw is None:
        if use_cluster:
            raise ConfigError("REDIS_URI", "is required when USE_REDIS_CLUSTER is true (the seed nodes)")
        for name in ("REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_CA"):
            if env.raw(name) is not None or env.raw(f"{name}_FILE") is not None:
                raise ConfigError(name, "is set but REDIS_URI is unset")
        return None
    uris = [item.strip() for item in raw.split(",")]
    if any(not item for item in uris):
        raise ConfigError("REDIS_URI", "has an empty entry in its comma-separated list")
    if len(uris) == 1 and not use_cluster:
        _check_standalone(uris[0])
        parts = urlsplit(uris[0])
        in_uri = (parts.username or None, parts.password or None)
        username, password = _credentials(env, in_uri)
        return RedisConfig(
            tuple(uris), False, (), username, password, _ca_file(env, uris[0].startswith("rediss://"))
        )
    seeds, uri_user, uri_password = _cluster(uris)
    username, password = _credentials(env, (uri_user, uri_password))
    return RedisConfig(
        tuple(uris),
        True,
        seeds,
        uri_user or username,
        uri_password or password,
        _ca_file(env, uris[0].startswith("rediss://")),
    )
