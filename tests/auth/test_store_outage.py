"""MongoDB goes away and comes back: only store-bound calls answer 503, and the app recovers by itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.conftest import STRONG_PASSWORD, AuthApp
from tests.harness import Server, mongo_uri, start_mongo

ADDRESS = "outage@example.com"


@pytest.fixture
def private_mongo(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A Mongo-wire server only this test uses, so stopping it disturbs nobody."""
    data_dir = tmp_path / "mongo-data"
    state: dict[str, Any] = {"server": start_mongo(data_dir), "data_dir": data_dir}
    try:
        yield state
    finally:
        server: Server = state["server"]
        server.stop(sig_kill=True)


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["code"] == "store_unavailable"
    assert body["message"]
    assert "set-cookie" not in response.headers
    assert "token" not in body


async def eventually_ok(call: Callable[[], Any], bound_s: float = 30.0) -> httpx.Response:
    """Retry until 200; the bound is generous, only the outcome is asserted."""
    deadline = time.monotonic() + bound_s
    while True:
        response: httpx.Response = await call()
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.2)


async def test_outage_and_recovery(app_factory: Callable[..., Any], private_mongo: dict[str, Any]) -> None:
    server: Server = private_mongo["server"]
    uri = mongo_uri(server.port, "outage")
    async with app_factory(MONGO_URI=uri, MONGO_TIMEOUT="300") as auth:
        await outage_scenario(auth, private_mongo)


async def outage_scenario(auth: AuthApp, private_mongo: dict[str, Any]) -> None:
    server: Server = private_mongo["server"]
    assert (await auth.register(ADDRESS)).status_code == 200
    before = await auth.login_body(ADDRESS)
    assert (await auth.get("/api/user", before["token"])).json()["email"] == ADDRESS

    server.stop(sig_kill=True)  # a crash, not a clean shutdown: journaled writes must survive it

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
    private_mongo["server"] = start_mongo(private_mongo["data_dir"], port=server.port)
    response = await eventually_ok(lambda: auth.login(ADDRESS))
    assert response.status_code == 200, response.text
    assert (await auth.client.get("/readyz")).json()["checks"]["store"] == "ok"
    # Data written before the outage survived it: the old session still refreshes.
    refreshed = await auth.refresh(before["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert (await auth.get("/api/user", refreshed.json()["token"])).status_code == 200
    assert (await auth.register("after@example.com", STRONG_PASSWORD)).status_code == 200


async def test_app_starts_while_the_store_is_down(
    app_factory: Callable[..., Any], private_mongo: dict[str, Any]
) -> None:
    """Started during an outage: health and readiness answer; store calls 503 until it is back."""
    server: Server = private_mongo["server"]
    port = server.port
    server.stop(sig_kill=True)
    async with app_factory(MONGO_URI=mongo_uri(port, "late"), MONGO_TIMEOUT="300") as auth:
        assert (await auth.client.get("/healthz")).status_code == 200
        ready = await auth.client.get("/readyz")
        # Never `store_unavailable`: at most "not ready" (nothing loaded yet), with the store reported.
        assert ready.status_code in (200, 503)
        assert ready.json()["status"] == ("ready" if ready.status_code == 200 else "not_ready")
        assert ready.json()["checks"]["store"] == "unavailable"
        assert_unavailable(await auth.register(ADDRESS))
        private_mongo["server"] = start_mongo(private_mongo["data_dir"], port=port)
        response = await eventually_ok(lambda: auth.register(ADDRESS))
        assert response.status_code == 200, response.text
        assert (await eventually_ok(lambda: auth.login(ADDRESS))).status_code == 200
