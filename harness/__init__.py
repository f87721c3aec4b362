"""Dev-only test harness, shared by `tests/` and `bench/`: real servers on free ports, the one
`eventually()`, the in-process app wrapper and the values every test user shares."""

from harness.accounts import STRONG_PASSWORD, registration
from harness.moderation import (
    AUTH_EVENT_SCOPES,
    GENEROUS_LIMITS,
    ModerationHandle,
    restart_moderation,
    shared_moderation,
    start_moderation,
)
from harness.processes import (
    ROOT,
    VENV_BIN,
    Server,
    clean_env,
    free_port,
    mongo_uri,
    run_authgate,
    run_to_exit,
    running,
    spawn_auth,
    start_auth,
    start_mongo,
    start_process,
    start_redis,
    start_service,
    stopping,
    wait_port,
)
from harness.proxies import find_caddy, find_nginx, render_template, start_caddy, start_nginx
from harness.redis_cluster import LocalCluster, start_redis_cluster
from harness.waiting import eventually, eventually_sync

__all__ = [
    "AUTH_EVENT_SCOPES",
    "GENEROUS_LIMITS",
    "ROOT",
    "STRONG_PASSWORD",
    "VENV_BIN",
    "LocalCluster",
    "ModerationHandle",
    "Server",
    "clean_env",
    "eventually",
    "eventually_sync",
    "find_caddy",
    "find_nginx",
    "free_port",
    "mongo_uri",
    "registration",
    "render_template",
    "restart_moderation",
    "run_authgate",
    "run_to_exit",
    "running",
    "shared_moderation",
    "spawn_auth",
    "start_auth",
    "start_caddy",
    "start_moderation",
    "start_mongo",
    "start_nginx",
    "start_process",
    "start_redis",
    "start_redis_cluster",
    "start_service",
    "stopping",
    "wait_port",
]
