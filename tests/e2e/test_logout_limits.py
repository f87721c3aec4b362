"""POST /api/auth/logout: limited per address, and a banned address costs no store lookup.

A banned address may still end a session whose access token verifies (a ban must never keep a
session alive); anything else from it gets 403 `banned` from memory, before the store.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from harness import eventually, free_port, mongo_uri
from tests.e2e.conftest import BAN_DEADLINE_S, Stack, assert_banned, assert_limited, fresh_email

LOGOUT_MAX = 3
MODERATION_ENV = {"LOGOUT_MAX": str(LOGOUT_MAX)}
StackFactory = Callable[..., contextlib.AbstractAsyncContextManager[Stack]]


async def banned_address(stack: Stack) -> str:
    ip = stack.fresh_ip()
    await stack.ban(f"ip:{ip}", reason="logout test")

    async def cached() -> bool:
        return stack.ctx.protection.client.is_banned(ip=ip) is not None

    await eventually(cached, "the ban in auth's cache", timeout=BAN_DEADLINE_S)
    return ip


async def test_logout_is_limited_per_address(stack: Stack) -> None:
    ip = stack.fresh_ip()
    client = stack.client(ip)
    junk = {"refresh_token": "x" * 40}
    for _ in range(LOGOUT_MAX):
        response = await client.post("/api/auth/logout", json=junk)
        assert response.status_code == 401, response.text
    assert_limited(await client.post("/api/auth/logout", json=junk), LOGOUT_MAX)
    # Another address is not affected.
    assert (await stack.client(stack.fresh_ip()).post("/api/auth/logout", json=junk)).status_code == 401


async def test_a_banned_address_may_only_end_a_session_it_proves(stack: Stack) -> None:
    owner = await stack.user(fresh_email("leaving"))
    ip = await banned_address(stack)
    client = stack.client(ip)
    # No credential that verifies: 403 banned, whatever the body says.
    assert_banned(await client.post("/api/auth/logout", json={"refresh_token": owner["refresh_token"]}))
    forged = {"Authorization": "Bearer " + owner["token"][:-4] + "AAAA"}
    assert_banned(await client.post("/api/auth/logout", headers=forged, json={}))
    # A valid access token still ends its session.
    bearer = {"Authorization": f"Bearer {owner['token']}"}
    done = await client.post("/api/auth/logout", headers=bearer, json={})
    assert done.status_code == 200, done.text
    refreshed = await stack.client(stack.fresh_ip()).post(
        "/api/auth/refresh", json={"refresh_token": owner["refresh_token"]}
    )
    assert refreshed.status_code == 401, refreshed.text


async def test_a_banned_address_is_answered_without_the_store(stack_factory: StackFactory) -> None:
    dead_store = mongo_uri(free_port(), "nothing_listens_here")
    async with stack_factory(MONGO_URI=dead_store, MONGO_TIMEOUT="500") as stack:
        ip = await banned_address(stack)
        client = stack.client(ip)
        junk = {"Authorization": "Bearer not.a.token"}
        for _ in range(5):  # a store lookup would answer 503 store_unavailable
            response = await client.post("/api/auth/logout", headers=junk, json={"refresh_token": "x" * 40})
            assert_banned(response)
