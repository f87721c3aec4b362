"""MongoDB fails: login, register and refresh answer 503 `store_unavailable` and issue nothing.

tests/auth/test_store_outage.py covers the answers during a full outage and the
recovery; tests/integration/test_staleness.py covers /verify's grace. This file
checks the store itself: nothing was written for a refused call (no session, no
user, no rotation, no revocation), also when only some commands fail
(`configureFailPoint` on secantusd-py, scoped to auth's connections by appName),
and a write the store could not confirm is a 503, never a 500.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from tests.auth.conftest import STRONG_PASSWORD, AuthApp
from tests.harness import mongo_uri, start_mongo

USER = "store-fault@example.com"
DB = "faults"


class PrivateStore:
    """A Mongo-wire server only this test uses (test commands on), and a plain client to inspect it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.server = start_mongo(data_dir, extra=["--enable-test-commands"])
        self.port = self.server.port

    def restart(self) -> None:
        self.server = start_mongo(self.data_dir, port=self.port, extra=["--enable-test-commands"])

    @contextmanager
    def inspect(self) -> Iterator[Any]:
        client: MongoClient[dict[str, Any]] = MongoClient(
            f"mongodb://127.0.0.1:{self.port}/?retryWrites=false", serverSelectionTimeoutMS=20_000
        )
        try:
            yield client[DB]
        finally:
            client.close()

    def fail(self, mode: Any, **data: Any) -> None:
        """`failCommand` for auth's connections only (appName), so this client keeps working."""
        with self.inspect() as db:
            db.client.admin.command(
                {
                    "configureFailPoint": "failCommand",
                    "mode": mode,
                    "data": {"appName": "authgate-auth", **data},
                }
            )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PrivateStore]:
    private = PrivateStore(tmp_path / "mongo-data")
    try:
        yield private
    finally:
        private.server.stop(sig_kill=True)


@asynccontextmanager
async def auth_on(app_factory: Callable[..., Any], store: PrivateStore) -> AsyncIterator[AuthApp]:
    async with app_factory(MONGO_URI=mongo_uri(store.port, DB), MONGO_TIMEOUT="500") as auth:
        yield auth


def snapshot(store: PrivateStore) -> dict[str, Any]:
    """Every user and session document as stored, and the revocation count."""
    with store.inspect() as db:
        return {
            "users": sorted(db.users.find({}), key=lambda doc: str(doc["_id"])),
            "sessions": sorted(db.auth_sessions.find({}), key=lambda doc: str(doc["_id"])),
            "revocations": db.auth_revocations.count_documents({}),
        }


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["code"] == "store_unavailable"
    assert int(response.headers["retry-after"]) >= 1
    assert "set-cookie" not in response.headers
    assert not {"token", "refresh_token", "user"} & set(body)


async def refused_calls(auth: AuthApp, refresh_token: str, new_email: str) -> None:
    """Everything that would issue something: a session, a rotated token, an account."""
    assert_refused(await auth.login(USER))  # browser: refresh token in a cookie
    assert_refused(await auth.login(USER, refresh_token_in_body=True))  # service client
    assert_refused(await auth.register(new_email))
    assert_refused(await auth.refresh(refresh_token))


async def eventually_ok(call: Callable[[], Any], bound_s: float = 40.0) -> httpx.Response:
    deadline = time.monotonic() + bound_s
    while True:
        response: httpx.Response = await call()
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.25)


async def test_outage_issues_nothing_and_needs_no_restart(
    app_factory: Callable[..., Any], store: PrivateStore
) -> None:
    async with auth_on(app_factory, store) as auth:
        assert (await auth.register(USER)).status_code == 200
        session = await auth.login_body(USER)
        before = snapshot(store)
        assert len(before["users"]) == 1 and len(before["sessions"]) == 1

        store.server.stop(sig_kill=True)
        await refused_calls(auth, session["refresh_token"], "during-outage@example.com")

        store.restart()
        # Read the store before the app touches it again: nothing was written for the refused calls.
        assert snapshot(store) == before
        # No restart of the app: the same refresh token rotates, and new work succeeds.
        refreshed = await eventually_ok(lambda: auth.refresh(session["refresh_token"]))
        assert refreshed.status_code == 200, refreshed.text
        assert (await auth.register("after-outage@example.com")).status_code == 200
        assert (await auth.login(USER)).status_code == 200


@pytest.mark.parametrize(
    "data",
    [
        {"failCommands": ["insert", "findAndModify"], "closeConnection": True},
        {"failCommands": ["insert", "findAndModify"], "errorCode": 50},  # MaxTimeMSExpired
    ],
    ids=["connection-dropped", "time-limit"],
)
async def test_failing_writes_issue_nothing(
    app_factory: Callable[..., Any], store: PrivateStore, data: dict[str, Any]
) -> None:
    """Reads work, the writes that would issue something fail: 503, and the store shows nothing new."""
    async with auth_on(app_factory, store) as auth:
        assert (await auth.register(USER)).status_code == 200
        session = await auth.login_body(USER)
        before = snapshot(store)

        store.fail("alwaysOn", **data)
        try:
            await refused_calls(auth, session["refresh_token"], "failed-write@example.com")
        finally:
            store.fail("off")
        assert snapshot(store) == before

        # The fault is gone: no restart, the unrotated token still works.
        refreshed = await eventually_ok(lambda: auth.refresh(session["refresh_token"]))
        assert refreshed.status_code == 200, refreshed.text
        assert (await eventually_ok(lambda: auth.register("after-fault@example.com"))).status_code == 200
        assert (await auth.login(USER, STRONG_PASSWORD)).status_code == 200


async def test_unconfirmed_write_is_503_without_a_token(
    app_factory: Callable[..., Any], store: PrivateStore
) -> None:
    """The write ran but its write concern failed (a node shutting down): durability is unknown, so
    the caller gets a retryable 503 and no token, never a 500."""
    async with auth_on(app_factory, store) as auth:
        assert (await auth.register(USER)).status_code == 200
        session = await auth.login_body(USER)
        for call in (
            lambda: auth.login(USER),
            lambda: auth.register("unconfirmed@example.com"),
            lambda: auth.refresh(session["refresh_token"]),
        ):
            store.fail(
                {"times": 1},
                failCommands=["insert", "findAndModify"],
                writeConcernError={"code": 91, "errmsg": "Replication is being shut down"},
            )
            try:
                assert_refused(await call())
            finally:
                store.fail("off")
