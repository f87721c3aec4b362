"""The processes the fuzzer talks to: auth (on its own database, with its own moderation) and a
moderation service to fuzz (in-memory store), plus valid credentials for both.

Each service gets a separate moderation, so whatever the fuzzer bans on the moderation
under test never reaches the auth service under test. Argon2 runs at test strength:
the fuzzer registers and logs in a lot.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from harness import ModerationHandle, Server, eventually_sync, start_moderation
from tests.integration.support import STRONG_PASSWORD, auth_env, start_auth


@dataclass
class FuzzStack:
    auth: Server
    moderation: ModerationHandle  # the one under test
    auth_moderation: ModerationHandle  # the one auth asks
    service_key: str
    email: str
    http: httpx.Client

    def login(self) -> dict[str, Any]:
        """A fresh session: fuzzed logouts and revocations never leave the next case without one."""
        response = self.http.post(
            "/api/auth/login",
            json={"email": self.email, "password": STRONG_PASSWORD, "refresh_token_in_body": True},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture(scope="module")
def fuzz_stack(mongo: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzStack]:
    work = tmp_path_factory.mktemp("fuzz")
    started: list[Server] = []
    http: httpx.Client | None = None
    try:
        auth_moderation = start_moderation(work / "auth-moderation")
        started.append(auth_moderation.server)
        moderation = start_moderation(work / "moderation")
        started.append(moderation.server)
        service_key = secrets.token_urlsafe(32)
        env = auth_env(
            mongo.port,
            **auth_moderation.auth_env(),
            AUTH_SERVICE_KEYS=f"fuzz:introspect:{service_key}",
            ARGON2_MEMORY_KIB="1024",
            ARGON2_TIME_COST="1",
            PASSWORD_MIN_STRENGTH="0",
            LOG_LEVEL="WARNING",
            DOMAIN_SERVER="https://auth.test",  # a relying party: the passkey routes are fuzzed for real
        )
        auth = start_auth(env, work)
        started.append(auth)
        http = httpx.Client(base_url=auth.url, timeout=30)
        email = f"fuzz-{secrets.token_hex(4)}@example.com"
        body = {
            "name": "Fuzz",
            "email": email,
            "password": STRONG_PASSWORD,
            "confirm_password": STRONG_PASSWORD,
        }
        assert http.post("/api/auth/register", json=body).status_code == 200
        yield FuzzStack(auth, moderation, auth_moderation, service_key, email, http)
    finally:
        if http is not None:
            http.close()
        for server in reversed(started):
            server.stop()
    for server in started:
        assert "Traceback" not in server.log(), f"{server.log_path}:\n{server.log()[-4000:]}"


@pytest.fixture
def banned_loopback(fuzz_stack: FuzzStack) -> Iterator[FuzzStack]:
    """127.0.0.1 banned on auth's moderation until the test ends (and auth has seen both changes)."""
    admin = httpx.Client(
        base_url=fuzz_stack.auth_moderation.server.url,
        headers={"authorization": f"Bearer {fuzz_stack.auth_moderation.admin_key}"},
        timeout=30,
    )
    ban = {"subject": "ip:127.0.0.1", "reason": "fuzz", "duration_seconds": 600}
    assert admin.post("/v1/bans", json=ban).status_code == 201
    try:
        eventually_sync(
            lambda: fuzz_stack.http.get("/api/config").status_code == 403, "auth applying the ban", timeout=20
        )
        yield fuzz_stack
    finally:
        assert admin.delete("/v1/bans/ip:127.0.0.1").status_code == 200
        admin.close()
        eventually_sync(
            lambda: fuzz_stack.http.get("/api/config").status_code == 200, "auth lifting the ban", timeout=20
        )
