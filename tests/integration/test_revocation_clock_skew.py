"""A writer whose wall clock is off, either way: its revocations still reach another process's /verify.

Real processes on one store: a reader auth process on the machine's clock answers
/verify; the writer is the `authgate` CLI or a second auth process run under
libfaketime (LD_PRELOAD), its wall clock shifted by SKEW_S seconds. The feed is read
by a store-assigned position, so no writer's clock can hide a record; before that a
writer 8 s behind was never read. The deadline is the generous one every staleness
test uses, and the record's own `at` proves the writer's clock really was shifted.
"""

from __future__ import annotations

import datetime as dt
import glob
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from harness import Server
from tests.integration.support import (
    REVOCATION_DEADLINE_S,
    AuthClient,
    auth_env,
    eventually_sync,
    run_cli,
    start_auth,
    stopping,
)

SKEWS_S = [-8, 8]
FAKETIME = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))), None)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(FAKETIME is None, reason="libfaketime is not installed (`make tools` installs it)"),
]


def skewed(env: dict[str, str], skew_s: int) -> dict[str, str]:
    """The same settings with the wall clock shifted; monotonic clocks (timeouts, sleeps) stay true."""
    assert FAKETIME is not None
    return {**env, "LD_PRELOAD": FAKETIME, "FAKETIME": f"{skew_s:+d}s", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


@pytest.fixture
def reader(mongo: Server, tmp_path: Path) -> Iterator[tuple[dict[str, str], AuthClient]]:
    """One auth process on the true clock; VERIFY_MAX_STALENESS at its 1 s default."""
    env = auth_env(mongo.port)
    server = start_auth(env, tmp_path)
    api = AuthClient(server.url)
    with stopping(server):
        yield env, api
        api.close()


def writer_offset_s(env: dict[str, str], user_id: str) -> float:
    """How far the newest revocation record's `at` (the writer's clock) is from the true time."""
    client: MongoClient[dict[str, Any]] = MongoClient(env["MONGO_URI"], tz_aware=True)
    try:
        records = client.get_default_database().auth_revocations
        newest = records.find_one({"user_id": user_id}, sort=[("pos", -1)])
        assert newest is not None, "the writer recorded no revocation"
        return float((newest["at"] - dt.datetime.now(dt.UTC)).total_seconds())
    finally:
        client.close()


def user_id_of(api: AuthClient, token: str) -> str:
    response = api.http.get("/api/user", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


@pytest.mark.parametrize("skew_s", SKEWS_S)
def test_cli_revocation_from_a_skewed_clock_reaches_verify(
    reader: tuple[dict[str, str], AuthClient], tmp_path: Path, skew_s: int
) -> None:
    env, api = reader
    email = f"skew-cli{skew_s + 100}@example.com"
    token = api.user(email)["token"]
    user_id = user_id_of(api, token)
    assert api.verify_status(token) == 200
    run_cli(skewed(env, skew_s), tmp_path / "cli", "revoke-sessions", email)
    eventually_sync(
        lambda: api.verify_status(token) == 401,
        f"a revocation written {skew_s:+d} s off reaching /verify",
        timeout=REVOCATION_DEADLINE_S,
    )
    assert abs(writer_offset_s(env, user_id) - skew_s) < 3  # the writer's clock really was shifted


@pytest.mark.parametrize("skew_s", SKEWS_S)
def test_logout_through_a_skewed_process_reaches_the_other(
    reader: tuple[dict[str, str], AuthClient], tmp_path: Path, skew_s: int
) -> None:
    env, api = reader
    writer = start_auth(skewed(env, skew_s), tmp_path / "writer")
    other = AuthClient(writer.url)
    with stopping(writer):
        token = api.user(f"skew-logout{skew_s + 100}@example.com")["token"]
        user_id = user_id_of(api, token)
        kept = api.login(f"skew-logout{skew_s + 100}@example.com")["token"]
        assert api.verify_status(token) == 200
        other.logout(token)  # through the skewed replica
        eventually_sync(
            lambda: api.verify_status(token) == 401,
            f"a logout written {skew_s:+d} s off reaching the other process",
            timeout=REVOCATION_DEADLINE_S,
        )
        assert api.verify_status(kept) == 200  # only that session ended
        assert abs(writer_offset_s(env, user_id) - skew_s) < 3
        other.close()
