"""Session-wide servers: one Mongo-wire server per test run, each test on its own database."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import LocalCluster, Server, start_mongo, start_redis_cluster

# Tests never read the developer's .env files or generated secrets.
os.environ.pop("MONGO_URI", None)


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("authgate")


@pytest.fixture(scope="session")
def mongo(work_dir: Path) -> Iterator[Server]:
    server = start_mongo(work_dir / "mongo-data")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster(work_dir: Path) -> Iterator[LocalCluster]:
    """One real Redis Cluster (3 masters, 3 replicas) for the whole session; tests use own prefixes."""
    cluster = start_redis_cluster(work_dir / "redis-cluster")
    try:
        yield cluster
    finally:
        cluster.stop()


_SCENARIO_DIRS = ("e2e", "faults", "browser")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Whole-system scenarios (several processes, kills, floods) are `e2e`: `make test-fast` skips them."""
    for item in items:
        if any(part in _SCENARIO_DIRS for part in Path(str(item.path)).parts[-3:-1]):
            item.add_marker(pytest.mark.e2e)
