"""All-sessions revocations beat logins in flight: a per-user epoch, read before the credentials."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from services.auth.sessions import StaleCredentials
from tests.auth.conftest import STRONG_PASSWORD, AuthApp
from tests.auth.test_api import email

SLOW_HASH = {"ARGON2_MEMORY_KIB": "65536", "ARGON2_TIME_COST": "8"}


async def user_id_of(auth: AuthApp, address: str) -> str:
    found = await auth.find_user(address)
    assert found is not None
    return str(found["_id"])


async def test_a_session_from_an_older_epoch_is_never_created(auth: AuthApp) -> None:
    body = await auth.user(address := email())
    user_id = await user_id_of(auth, address)
    before = await auth.ctx.sessions.epoch(user_id)
    await auth.ctx.sessions.revoke(user_id=user_id, reason="admin_revoked", actor="test")
    assert await auth.ctx.sessions.epoch(user_id) == before + 1
    with pytest.raises(StaleCredentials):
        await auth.ctx.sessions.create(user_id, "203.0.113.1", None, before)
    assert (await auth.refresh(body["refresh_token"])).status_code == 401


@pytest.mark.parametrize("reason", ["admin_revoked", "password_reset", "role_changed"])
async def test_a_login_in_flight_during_a_revocation_gets_no_lasting_session(
    app_factory: Callable[..., Any], reason: str
) -> None:
    """The revocation lands while the password hash runs: whatever the login answers, it cannot last."""
    async with app_factory(**SLOW_HASH) as auth:
        await auth.user(address := email())
        user_id = await user_id_of(auth, address)
        login = asyncio.create_task(
            auth.client.post(
                "/api/auth/login",
                json={"email": address, "password": STRONG_PASSWORD, "refresh_token_in_body": True},
            )
        )
        await asyncio.sleep(0.05)  # ordering, not timing: the login is inside its hash now
        assert not login.done()
        await auth.ctx.sessions.revoke(user_id=user_id, reason=reason, actor="test")
        response = await login
        if response.status_code == 200:  # answered before the revocation's sweep: it must not survive
            body = response.json()
            assert (await auth.refresh(body["refresh_token"])).status_code == 401
            headers = {"Authorization": f"Bearer {body['token']}"}
            assert (await auth.client.get("/verify", headers=headers)).status_code == 401
            assert (await auth.client.get("/api/user", headers=headers)).status_code == 401
        else:
            assert response.status_code == 401, response.text
        # A login after the revocation works and carries the new epoch.
        fresh = await auth.login_body(address)
        claims = jwt.decode(fresh["token"], options={"verify_signature": False})
        assert claims["ep"] == await auth.ctx.sessions.epoch(user_id)
        assert (await auth.refresh(fresh["refresh_token"])).status_code == 200


async def test_verify_refuses_tokens_of_an_older_epoch(app_factory: Callable[..., Any]) -> None:
    """Two processes: the one that did not revoke learns the epoch from the feed."""
    async with app_factory() as first:
        body = await first.user(address := email())
        user_id = await user_id_of(first, address)
        headers = {"Authorization": f"Bearer {body['token']}"}
        assert (await first.client.get("/verify", headers=headers)).status_code == 200
        await first.ctx.sessions.revoke(user_id=user_id, reason="admin_revoked", actor="test")
        assert first.ctx.revocations.min_epoch(user_id) >= 1
        assert (await first.client.get("/verify", headers=headers)).status_code == 401
