"""Revocations reach /verify on every auth process within the bound; a store outage is survived honestly.

Two (or three) `python -m services.auth` processes share one store and one JWT secret,
as replicas behind a proxy do. Revocations made through one process, or by the
`authgate` CLI (a third party neither process hears from directly), must reach every
process's /verify through the `auth_revocations` poll. The deadline is generous
(REVOCATION_DEADLINE_S = 5 s); the published 1 s p99 is measured by `make bench`.

The outage test runs its own store (not the session one) so it can stop and restart it
on the same port and data directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness import Server, start_mongo, wait_port
from tests.integration.support import (
    REVOCATION_DEADLINE_S,
    AuthClient,
    auth_env,
    eventually_sync,
    run_cli,
    spawn_auth,
    start_auth,
)

GRACE_MS = 2000


@dataclass
class Pair:
    env: dict[str, str]
    a: AuthClient
    b: AuthClient
    workdir: Path

    def refused_everywhere(self, token: str) -> bool:
        return all(
            api.verify_status(token, path) == 401
            for api in (self.a, self.b)
            for path in ("/verify", "/verify/api/x")
        )


@pytest.fixture(scope="module")
def pair(mongo: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    workdir = tmp_path_factory.mktemp("staleness-pair")
    # No refresh grace period, so replaying a rotated refresh token is reuse at once.
    env = auth_env(mongo.port, REFRESH_GRACE_PERIOD="0")
    servers = [start_auth(env, workdir), start_auth(env, workdir)]
    a, b = (AuthClient(server.url) for server in servers)
    try:
        yield Pair(env, a, b, workdir)
    finally:
        a.close()
        b.close()
        for server in servers:
            server.stop()


def test_logout_through_a_reaches_b(pair: Pair) -> None:
    body = pair.a.user("logout-a@example.com")
    other = pair.b.login("logout-a@example.com")
    token = body["token"]
    assert pair.b.verify_status(token) == 200  # B accepts A's token: same key, and it has polled
    pair.a.logout(token)
    assert pair.a.verify_status(token) == 401  # the process that revoked knows at once
    eventually_sync(
        lambda: pair.b.verify_status(token) == 401, "B refusing A's logout", timeout=REVOCATION_DEADLINE_S
    )
    assert pair.refused_everywhere(token)
    # Only that session ended.
    assert pair.a.verify_status(other["token"]) == 200
    assert pair.b.verify_status(other["token"]) == 200


def test_revoke_other_sessions_reaches_the_other_process(pair: Pair) -> None:
    keep = pair.a.user("others@example.com")
    gone = pair.b.login("others@example.com")
    assert pair.b.verify_status(gone["token"]) == 200
    response = pair.a.http.delete("/api/auth/sessions", headers={"Authorization": f"Bearer {keep['token']}"})
    assert response.status_code == 200, response.text
    eventually_sync(
        lambda: pair.refused_everywhere(gone["token"]), "logout-all reaching B", timeout=REVOCATION_DEADLINE_S
    )
    assert pair.b.verify_status(keep["token"]) == 200


def test_refresh_token_reuse_revokes_the_family_everywhere(pair: Pair) -> None:
    body = pair.a.user("reuse@example.com")
    first_refresh = body["refresh_token"]
    rotated = pair.a.http.post("/api/auth/refresh", json={"refresh_token": first_refresh})
    assert rotated.status_code == 200, rotated.text
    token = rotated.json()["token"]
    assert pair.b.verify_status(token) == 200
    replay = pair.a.http.post("/api/auth/refresh", json={"refresh_token": first_refresh})
    assert replay.status_code in (400, 401)
    eventually_sync(
        lambda: pair.refused_everywhere(token), "reuse revocation reaching B", timeout=REVOCATION_DEADLINE_S
    )


@pytest.mark.parametrize(
    ("command", "stdin"),
    [
        (["revoke-sessions"], None),
        (["set-role", "{email}", "ADMIN"], None),
        (["reset-password", "{email}", "--password-stdin"], "a brand new passphrase for the tests\n"),
        (["delete-user", "{email}", "--yes"], None),
    ],
    ids=["revoke-sessions", "set-role", "reset-password", "delete-user"],
)
def test_cli_revocation_reaches_both_processes(pair: Pair, command: list[str], stdin: str | None) -> None:
    email = f"cli-{command[0]}@example.com"
    on_a = pair.a.user(email)["token"]
    on_b = pair.b.login(email)["token"]
    for token in (on_a, on_b):
        assert pair.a.verify_status(token) == 200
        assert pair.b.verify_status(token) == 200
    args = [part.format(email=email) for part in command]
    if "{email}" not in command:
        args.append(email)
    run_cli(pair.env, pair.workdir / "cli", *args, stdin=stdin)
    eventually_sync(
        lambda: pair.refused_everywhere(on_a) and pair.refused_everywhere(on_b),
        f"`authgate {command[0]}` reaching both processes",
        timeout=REVOCATION_DEADLINE_S,
    )


# The store goes away -----------------------------------------------------------------------------


def _revocations(api: AuthClient) -> tuple[int, dict[str, Any]]:
    response = api.http.get("/readyz", timeout=30)
    body = response.json()
    checks = body.get("checks", {})
    assert "revocations" in checks, f"/readyz does not report the revocation state: {body}"
    entry = checks["revocations"]
    assert isinstance(entry, dict) and "staleness_ms" in entry, entry
    return response.status_code, entry


def test_store_outage_grace_then_503_then_recovery(tmp_path: Path) -> None:
    store = start_mongo(tmp_path / "mongo-data")
    env = auth_env(store.port, VERIFY_STALE_GRACE=str(GRACE_MS), MONGO_TIMEOUT="1000")
    started: list[Server] = []
    late: Server | None = None
    clients: list[AuthClient] = []
    try:
        a_server = start_auth(env, tmp_path)
        started.append(a_server)
        a = AuthClient(a_server.url)
        clients.append(a)
        body = a.user("outage@example.com")
        token = body["token"]
        assert a.verify_status(token) == 200
        status, entry = _revocations(a)
        assert status == 200
        assert entry["staleness_ms"] is not None and entry["staleness_ms"] < 5 * 1000

        store.stop(sig_kill=True)  # abrupt, like a crashed or partitioned store
        # Within the grace period /verify keeps answering from memory (the last successful
        # poll was at most one poll interval, 250 ms, ago; the grace is 2 s).
        assert a.verify_status(token) == 200
        # A process that starts now has never loaded the revocation state.
        late = spawn_auth(env, tmp_path)

        seen: list[int] = []

        def stale() -> httpx.Response | None:
            response = a.verify(token)
            seen.append(response.status_code)
            return response if response.status_code == 503 else None

        refused = eventually_sync(stale, "503 after the grace period", timeout=GRACE_MS / 1000 + 15)
        assert refused.json()["code"] == "revocation_state_stale"
        assert refused.headers.get("retry-after")
        assert "x-auth-user-id" not in refused.headers
        assert seen[-1] == 503 and set(seen[:-1]) <= {200}, seen  # served, then refused: nothing else
        # Once stale, it stays refused until the store is back, also for other shapes.
        assert a.verify(token, "/verify/api/x").status_code == 503
        assert a.verify(None).status_code == 503

        status, entry = _revocations(a)
        assert status == 200, "a store blip must not drain every replica"
        assert entry.get("state") == "stale", entry
        assert entry["staleness_ms"] >= GRACE_MS

        started.append(late)
        wait_port(late.port, 60, late.proc)
        c = AuthClient(late.url)
        clients.append(c)
        assert c.verify_status(token) == 503  # never loaded: refused from the first request
        assert c.verify(token).json()["code"] == "revocation_state_stale"
        status, entry = _revocations(c)
        assert status == 503 and entry["staleness_ms"] is None

        restarted = start_mongo(tmp_path / "mongo-data", port=store.port)
        store = restarted
        eventually_sync(
            lambda: a.verify_status(token) == 200, "A serving again after the store returned", timeout=20
        )
        eventually_sync(
            lambda: c.verify_status(token) == 200, "the late process serving once loaded", timeout=20
        )
        status, entry = _revocations(a)
        assert status == 200 and entry.get("state") == "current", entry
        # The data survived the restart: the session is still there to log out of, and the
        # revocation then reaches the process that did not make it.
        a.logout(token)
        eventually_sync(
            lambda: c.verify_status(token) == 401, "C refusing after recovery", timeout=REVOCATION_DEADLINE_S
        )
    finally:
        for client in clients:
            client.close()
        for server in started:
            server.stop()
        if late is not None:
            late.stop(sig_kill=True)
        store.stop()
