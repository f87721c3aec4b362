"""Sessions as refresh-token families: rotation, reuse detection, limits and revocation."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import jwt

from services.auth.sessions import token_hash, utcnow
from tests.auth.conftest import AuthApp
from tests.auth.session_helpers import (
    email,
    revocations,
    user_status,
)

# Rotation ------------------------------------------------------------------------------


async def test_parent_within_grace_period_yields_the_same_child(auth: AuthApp) -> None:
    body = await auth.user(email())
    rt1 = body["refresh_token"]
    first = await auth.refresh(rt1)
    assert first.status_code == 200
    rt2 = first.json()["refresh_token"]
    assert rt2 != rt1
    again = await auth.refresh(rt1)  # default grace period: 10 s
    assert again.status_code == 200
    assert again.json()["refresh_token"] == rt2
    assert (await auth.refresh(rt2)).status_code == 200
    assert await auth.collection("auth_audit").count_documents({"event": "refresh_token_reuse"}) == 0


async def test_twenty_concurrent_refreshes_share_one_child(auth: AuthApp) -> None:
    body = await auth.user(email())
    parent = body["refresh_token"]
    responses = await asyncio.gather(*(auth.refresh(parent) for _ in range(20)))
    assert [r.status_code for r in responses] == [200] * 20, [
        r.text for r in responses if r.status_code != 200
    ]
    children = {r.json()["refresh_token"] for r in responses}
    assert len(children) == 1
    child = children.pop()
    assert child != parent
    # One chain: a single session, whose current token is the child.
    sessions = [doc async for doc in auth.collection("auth_sessions").find({})]
    assert len(sessions) == 1
    assert sessions[0]["current_hash"] == token_hash(child)
    assert sessions[0]["revoked_at"] is None
    # Every access token handed out belongs to that session and works.
    sids = {jwt.decode(r.json()["token"], options={"verify_signature": False})["sid"] for r in responses}
    assert sids == {sessions[0]["_id"]}
    assert await user_status(auth, responses[0].json()["token"]) == 200
    # The child refreshes normally and the chain goes on.
    grandchild = await auth.refresh(child)
    assert grandchild.status_code == 200
    assert grandchild.json()["refresh_token"] not in (parent, child)
    assert await auth.collection("auth_audit").count_documents({"event": "refresh_token_reuse"}) == 0


async def test_concurrent_cookie_refreshes_share_one_child(auth: AuthApp) -> None:
    address = email()
    await auth.register(address)
    login = await auth.login(address)
    parent = login.cookies["refreshToken"]
    auth.client.cookies.clear()
    responses = await asyncio.gather(
        *(
            auth.client.post("/api/auth/refresh", headers={"Cookie": f"refreshToken={parent}"})
            for _ in range(10)
        )
    )
    assert [r.status_code for r in responses] == [200] * 10
    assert len({r.cookies["refreshToken"] for r in responses}) == 1


async def test_replay_of_parent_after_grace_revokes_the_session(app_factory: Callable[..., Any]) -> None:
    async with app_factory(REFRESH_GRACE_PERIOD="200") as auth:
        body = await auth.user(email())
        rt1 = body["refresh_token"]
        rotated = await auth.refresh(rt1)
        assert rotated.status_code == 200
        rt2, access = rotated.json()["refresh_token"], rotated.json()["token"]
        await asyncio.sleep(0.6)
        replay = await auth.refresh(rt1)
        assert replay.status_code == 401
        assert replay.json()["code"] == "invalid_refresh_token"
        # The whole family is gone: the newest token and the access tokens too.
        assert (await auth.refresh(rt2)).status_code == 401
        assert await user_status(auth, access) == 401
        assert await user_status(auth, body["token"]) == 401
        session = await auth.collection("auth_sessions").find_one({})
        assert session is not None
        assert session["revoked_reason"] == "refresh_token_reuse"
        records = [doc async for doc in auth.collection("auth_audit").find({"event": "refresh_token_reuse"})]
        assert len(records) == 1
        assert records[0]["user_id"] == body["user"]["id"]
        assert records[0]["session_id"] == session["_id"]
        dumped = json.dumps(records[0], default=str)
        assert rt1 not in dumped
        assert rt2 not in dumped
        assert len(await revocations(auth, reason="refresh_token_reuse", sid=session["_id"])) == 1


async def test_replay_of_grandparent_revokes_the_session(auth: AuthApp) -> None:
    body = await auth.user(email())
    rt1 = body["refresh_token"]
    rt2 = (await auth.refresh(rt1)).json()["refresh_token"]
    rt3 = (await auth.refresh(rt2)).json()["refresh_token"]
    # rt1 is two generations old: reuse even inside the grace period.
    assert (await auth.refresh(rt1)).status_code == 401
    assert (await auth.refresh(rt3)).status_code == 401
    assert (await auth.refresh(rt2)).status_code == 401
    assert await auth.collection("auth_audit").count_documents({"event": "refresh_token_reuse"}) == 1


async def test_reuse_does_not_touch_other_sessions(app_factory: Callable[..., Any]) -> None:
    async with app_factory(REFRESH_GRACE_PERIOD="0") as auth:
        address = email()
        await auth.register(address)
        stolen = await auth.login_body(address)
        other = await auth.login_body(address)
        rotated = (await auth.refresh(stolen["refresh_token"])).json()["refresh_token"]
        assert (await auth.refresh(stolen["refresh_token"])).status_code == 401
        assert (await auth.refresh(rotated)).status_code == 401
        assert (await auth.refresh(other["refresh_token"])).status_code == 200


async def test_grace_path_requires_a_live_session(auth: AuthApp) -> None:
    """Inside the grace period the parent still yields nothing once the session has ended."""
    body = await auth.user(email())
    rotated = (await auth.refresh(body["refresh_token"])).json()
    response = await auth.client.post("/api/auth/logout", json={"refresh_token": rotated["refresh_token"]})
    assert response.status_code == 200
    assert (await auth.refresh(body["refresh_token"])).status_code == 401
    assert (await auth.refresh(rotated["refresh_token"])).status_code == 401


async def test_grace_path_refuses_an_idle_session(app_factory: Callable[..., Any]) -> None:
    """Idle past SESSION_IDLE_TIMEOUT: the parent, inside its grace period, and the child are refused.

    The sessions' clock is the test's: a slow machine can neither idle the session out early
    nor make the test skip itself.
    """
    async with app_factory(SESSION_IDLE_TIMEOUT="1000", REFRESH_GRACE_PERIOD="1000 * 60") as auth:
        start = utcnow()
        auth.ctx.sessions._clock = lambda: start
        body = await auth.user(email())
        rotated = await auth.refresh(body["refresh_token"])
        assert rotated.status_code == 200, rotated.text
        idle = start + dt.timedelta(milliseconds=1500)
        auth.ctx.sessions._clock = lambda: idle
        assert (await auth.refresh(body["refresh_token"])).status_code == 401
        assert (await auth.refresh(rotated.json()["refresh_token"])).status_code == 401


async def test_refresh_tokens_are_stored_only_as_hashes(auth: AuthApp) -> None:
    body = await auth.user(email())
    tokens = [body["refresh_token"]]
    for _ in range(3):
        tokens.append((await auth.refresh(tokens[-1])).json()["refresh_token"])
    assert len(set(tokens)) == 4
    assert all(len(t) >= 43 for t in tokens)  # 256 bits in base64url
    dump = json.dumps([doc async for doc in auth.collection("auth_sessions").find({})], default=str)
    dump += json.dumps([doc async for doc in auth.collection("auth_audit").find({})], default=str)
    for token in tokens:
        assert token not in dump
        assert token_hash(token) in dump or token == tokens[0]


# Limits and revocation -----------------------------------------------------------------


async def test_max_sessions_per_user_evicts_the_oldest(app_factory: Callable[..., Any]) -> None:
    async with app_factory(MAX_SESSIONS_PER_USER="2") as auth:
        address = email()
        await auth.register(address)
        logins = []
        for _ in range(3):
            logins.append(await auth.login_body(address))
            await asyncio.sleep(0.01)  # distinct creation times
        assert (await auth.refresh(logins[0]["refresh_token"])).status_code == 401
        assert await user_status(auth, logins[0]["token"]) == 401
        for kept in logins[1:]:
            assert await user_status(auth, kept["token"]) == 200
        listed = (await auth.get("/api/auth/sessions", logins[2]["token"])).json()
        assert len(listed) == 2
        evicted = await revocations(auth, reason="max_sessions")
        assert len(evicted) == 1
        assert evicted[0]["user_id"] == logins[0]["user"]["id"]
        # Another user is not affected by this user's limit.
        other = await auth.user(email())
        assert await user_status(auth, other["token"]) == 200


async def test_access_token_of_revoked_session_is_refused(auth: AuthApp) -> None:
    body = await auth.user(email())
    assert await user_status(auth, body["token"]) == 200
    sid = jwt.decode(body["token"], options={"verify_signature": False})["sid"]
    await auth.ctx.sessions.revoke(user_id=body["user"]["id"], session_ids=[sid], reason="test", actor="test")
    response = await auth.get("/api/user", body["token"])
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    # Appending padding does not revive it (revocation is by session, not by token bytes).
    assert await user_status(auth, body["token"] + "=") == 401
    assert (await auth.get("/api/auth/sessions", body["token"])).status_code == 401


async def test_every_revocation_is_recorded(auth: AuthApp) -> None:
    address = email()
    await auth.register(address)
    a, b, c, d = [await auth.login_body(address) for _ in range(4)]
    user_id = a["user"]["id"]

    def sid(body: dict[str, Any]) -> str:
        return str(jwt.decode(body["token"], options={"verify_signature": False})["sid"])

    bearer = {"Authorization": f"Bearer {a['token']}"}
    assert (await auth.client.delete(f"/api/auth/sessions/{sid(b)}", headers=bearer)).status_code == 200
    assert (await auth.client.delete("/api/auth/sessions", headers=bearer)).status_code == 200
    assert (await auth.client.post("/api/auth/logout", headers=bearer)).status_code == 200
    records = await revocations(auth, user_id=user_id)
    by_reason: dict[str, set[str | None]] = {}
    for record in records:
        by_reason.setdefault(record["reason"], set()).add(record["sid"])
        assert record["at"] is not None
        assert record["expires_at"] > record["at"]
    assert by_reason["user_revoked"] == {sid(b)}
    assert by_reason["user_revoked_others"] == {sid(c), sid(d)}
    assert by_reason["logout"] == {sid(a)}
    sessions = [doc async for doc in auth.collection("auth_sessions").find({"user_id": user_id})]
    assert all(doc["revoked_at"] is not None for doc in sessions)
    events = await auth.collection("auth_audit").count_documents(
        {"event": "session_revoked", "user_id": user_id}
    )
    assert events == 3
    assert await auth.collection("auth_audit").count_documents({"event": "logout", "user_id": user_id}) == 1


async def test_refresh_token_is_not_an_access_token(auth: AuthApp) -> None:
    body = await auth.user(email())
    refresh_token = body["refresh_token"]
    for path in ("/api/user", "/api/auth/sessions"):
        response = await auth.get(path, refresh_token)
        assert response.status_code == 401
        assert response.json()["code"] == "unauthorized"
    response = await auth.client.delete(
        "/api/auth/sessions", headers={"Authorization": f"Bearer {refresh_token}"}
    )
    assert response.status_code == 401
    # Still a perfectly good refresh token.
    assert (await auth.refresh(refresh_token)).status_code == 200


async def test_access_token_is_not_a_refresh_token(auth: AuthApp) -> None:
    body = await auth.user(email())
    access = body["token"]
    response = await auth.client.post("/api/auth/refresh", headers={"Cookie": f"refreshToken={access}"})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_refresh_token"
    response = await auth.refresh(access)
    assert response.status_code in (
        401,
        422,
    )  # longer than any refresh token: refused by the schema or the store
    assert "token" not in response.json()
    assert await auth.collection("auth_audit").count_documents({"event": "refresh_token_reuse"}) == 0
    assert await user_status(auth, access) == 200
