"""Session-wide servers: one Mongo-wire server per test run, each test on its own database."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Server, start_mongo

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
