"""MongoDB fails and comes back: store-bound calls answer 503 `store_unavailable`, issue nothing,
and the running app recovers by itself.

The answers during a full outage (also when the app starts while the store is down), what
does not need the store, and the recovery; then the store itself: nothing was written for a
refused call (no session, no user, no rotation, no revocation), also when only some commands
fail (`configureFailPoint` on secantusd-py, scoped to auth's connections by appName), and a
write the store could not confirm is a 503, never a 500. tests/integration/test_staleness.py
covers /verify's grace.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from harness import eventually, mongo_uri, start_mongo
from tests.auth.conftest import STRONG_PASSWORD, AuthApp

USER = "store-fault@example.com"
DB = "faults"

ADDRESS = "outage@example.com"


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


def succeeded(
    call: Callable[[], Awaitable[httpx.Response]],
) -> Callable[[], Awaitable[httpx.Response | None]]:
    """A check for `eventually`: the answer once it is a 200, None before."""

    async def check() -> httpx.Response | None:
        response = await call()
        return response if response.status_code == 200 else None

    return check


async def recovered(call: Callable[[], Awaitable[httpx.Response]], what: str) -> httpx.Response:
    """The first 200 after a fault ends; the bound is generous, only the outcome is asserted."""
    return await eventually(succeeded(call), what, timeout=40)


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
        refreshed = await recovered(
            lambda: auth.refresh(session["refresh_token"]), "the refresh after the fault"
        )
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
        refreshed = await recovered(
            lambda: auth.refresh(session["refresh_token"]), "the refresh after the fault"
        )
        assert refreshed.status_code == 200, refreshed.text
        await recovered(lambda: auth.register("after-fault@example.com"), "a registration after the fault")
        assert (await auth.login(USER, STRONG_PASSWORD)).status_code == 200


async def test_unconfirmed_write_is_503_without_a_token(
    app_factory: Callable[..., Any], store: PrivateStore
) -> None:
    """The write ran but its write concern failed (a node shutting down): durability is unknown, so
    the caller gets a retryable 503 and no token, never a 500."""
    async with auth_on(app_factory, store) as auth:
        assert (await auth.register(USER)).status_code == 200
        session = await auth.login_body(USER)
        calls: list[Callable[[], Awaitable[httpx.Response]]] = [
            lambda: auth.login(USER),
            lambda: auth.register("unconfirmed@example.com"),
            lambda: auth.refresh(session["refresh_token"]),
        ]
        for call in calls:
            store.fail(
                {"times": 1},
                failCommands=["insert", "findAndModify"],
                writeConcernError={"code": 91, "errmsg": "Replication is being shut down"},
            )
            try:
                assert_refused(await call())
            finally:
                store.fail("off")


# A full outage, seen from the API -------------------------------------------------------------


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["code"] == "store_unavailable"
    assert body["message"]
    assert "set-cookie" not in response.headers
    assert "token" not in body


async def test_outage_and_recovery(app_factory: Callable[..., Any], store: PrivateStore) -> None:
    async with app_factory(MONGO_URI=mongo_uri(store.port, "outage"), MONGO_TIMEOUT="300") as auth:
        await outage_scenario(auth, store)


async def outage_scenario(auth: AuthApp, store: PrivateStore) -> None:
    assert (await auth.register(ADDRESS)).status_code == 200
    before = await auth.login_body(ADDRESS)
    assert (await auth.get("/api/user", before["token"])).json()["email"] == ADDRESS

    store.server.stop(sig_kill=True)  # a crash, not a clean shutdown: journaled writes must survive it

    # Everything that needs the store: 503 store_unavailable, nothing issued.
    started = time.monotonic()
    assert_unavailable(await auth.login(ADDRESS))
    assert time.monotonic() - started < 30  # bounded by MONGO_TIMEOUT, not hanging
    assert_unavailable(await auth.login(ADDRESS, refresh_token_in_body=True))
    assert_unavailable(await auth.login("nobody@example.com"))
    assert_unavailable(await auth.register("new@example.com"))
    assert_unavailable(await auth.refresh(before["refresh_token"]))
    assert_unavailable(await auth.get("/api/user", before["token"]))
    assert_unavailable(await auth.get("/api/auth/sessions", before["token"]))
    response = await auth.client.post(
        "/api/auth/logout", headers={"Authorization": f"Bearer {before['token']}"}
    )
    assert_unavailable(response)
    assert (await auth.login(ADDRESS)).headers["retry-after"]

    # What does not need the store keeps answering.
    assert (await auth.client.get("/healthz")).status_code == 200
    ready = await auth.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["store"] == "unavailable"
    assert (await auth.client.get("/openapi.json")).status_code == 200
    assert (await auth.client.get("/api/config")).status_code == 200
    # Validation still happens before the store is needed.
    assert (await auth.client.post("/api/auth/login", json={"email": {"$gt": ""}})).status_code == 422
    assert (await auth.get("/api/user", "not-a-token")).status_code == 401

    # The same server, same port and data: the running app recovers without a restart.
    store.restart()
    await recovered(lambda: auth.login(ADDRESS), "a login after the store returned")
    assert (await auth.client.get("/readyz")).json()["checks"]["store"] == "ok"
    # Data written before the outage survived it: the old session still refreshes.
    refreshed = await auth.refresh(before["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert (await auth.get("/api/user", refreshed.json()["token"])).status_code == 200
    assert (await auth.register("after@example.com", STRONG_PASSWORD)).status_code == 200


async def test_app_starts_while_the_store_is_down(
    app_factory: Callable[..., Any], store: PrivateStore
) -> None:
    """Started during an outage: health and readiness answer; store calls 503 until it is back."""
    store.server.stop(sig_kill=True)
    async with app_factory(MONGO_URI=mongo_uri(store.port, "late"), MONGO_TIMEOUT="300") as auth:
        assert (await auth.client.get("/healthz")).status_code == 200
        ready = await auth.client.get("/readyz")
        # Never `store_unavailable`: at most "not ready" (nothing loaded yet), with the store reported.
        assert ready.status_code in (200, 503)
        assert ready.json()["status"] == ("ready" if ready.status_code == 200 else "not_ready")
        assert ready.json()["checks"]["store"] == "unavailable"
        assert_unavailable(await auth.register(ADDRESS))
        store.restart()
        await recovered(lambda: auth.register(ADDRESS), "a registration after the store returned")
        await recovered(lambda: auth.login(ADDRESS), "a login after the store returned")
