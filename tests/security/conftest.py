"""Fixtures for the security-checklist tests.

The in-process app fixtures come from tests/auth; `live_auth` is one real
`python -m services.auth` process per module, in production mode (JSON logs),
whose MongoDB URI carries a canary user and password, so the log tests can prove
what never reaches a log line.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pymongo import MongoClient

from harness import Server, start_auth
from tests.auth.conftest import app_factory, auth, base_env, settings_factory

__all__ = ["app_factory", "auth", "live_auth", "settings_factory"]


@dataclass
class LiveAuth:
    server: Server
    mongo_uri: str
    mongo_password: str
    database: str

    @property
    def url(self) -> str:
        return self.server.url


def _canary_mongo_user(port: int, database: str) -> tuple[str, str]:
    """A store user with a unique password: the connection string now holds a secret."""
    user, password = f"canary_{secrets.token_hex(4)}", f"MongoCanary{secrets.token_hex(8)}"
    client: MongoClient[dict[str, Any]] = MongoClient(
        f"mongodb://127.0.0.1:{port}/?retryWrites=false", serverSelectionTimeoutMS=5000
    )
    with client as c:
        c.admin.command(
            "createUser",
            user,
            pwd=password,
            roles=[{"role": "readWrite", "db": database}, {"role": "dbAdmin", "db": database}],
        )
    return user, password


@pytest.fixture(scope="module")
def live_auth(mongo: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAuth]:
    work = tmp_path_factory.mktemp("security-auth")
    database = f"security_{secrets.token_hex(4)}"
    user, password = _canary_mongo_user(mongo.port, database)
    uri = f"mongodb://{user}:{password}@127.0.0.1:{mongo.port}/{database}?retryWrites=false&authSource=admin"
    env = {
        **base_env(mongo.port),
        "AUTHGATE_ENV": "production",  # JSON log lines, Secure cookies, every startup check
        "MONGO_URI": uri,
        "VERIFY_LOG_SAMPLE": "1",  # every /verify decision is logged, with its path
    }
    server = start_auth(env, work, root=work)
    try:
        yield LiveAuth(server, uri, password, database)
    finally:
        server.stop()
