"""All-sessions revocations beat logins in flight: a per-user epoch, read before the credentials."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from services.auth import cli
from services.auth.sessions import StaleCredentials
from tests.auth.api_helpers import email
from tests.auth.conftest import STRONG_PASSWORD, AuthApp

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


async def test_bearer_checks_refuse_an_epoch_the_feed_announced(app_factory: Callable[..., Any]) -> None:
    """A replica may learn "this user is now at epoch N" from the feed before the writer's sweep has
    marked the sessions: the API's bearer checks and introspection refuse older tokens at once,
    as /verify does."""
    key = secrets.token_urlsafe(32)
    async with app_factory(AUTH_SERVICE_KEYS=f"billing:introspect:{key}") as auth:
        body = await auth.user(address := email())
        user_id = await user_id_of(auth, address)
        headers = {"Authorization": f"Bearer {body['token']}"}

        async def introspect() -> dict[str, Any]:
            response = await auth.client.post(
                "/api/auth/introspect",
                content=f"token={body['token']}",
                headers={
                    "Authorization": f"Bearer {key}",
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )
            assert response.status_code == 200, response.text
            answer: dict[str, Any] = response.json()
            return answer

        assert (await auth.client.get("/api/user", headers=headers)).status_code == 200
        assert (await introspect())["active"] is True
        auth.ctx.revocations.add_epoch(user_id, 1, time.time() + 60)  # what a poll learns from another writer
        assert (await auth.client.get("/verify", headers=headers)).status_code == 401
        assert (await auth.client.get("/api/user", headers=headers)).status_code == 401
        assert (await auth.client.get("/api/auth/sessions", headers=headers)).status_code == 401
        assert (await introspect())["active"] is False


async def test_a_login_checked_while_delete_user_runs_gets_no_lasting_session(auth: AuthApp) -> None:
    """The login checks the password just before `authgate delete-user` deletes the account and
    creates its session just after: that session must not refresh or pass a bearer check."""
    await auth.user(address := email())
    user_id = await user_id_of(auth, address)
    accounts = auth.ctx.accounts
    real_delete = accounts.delete
    raced: list[tuple[Any, str]] = []

    async def delete_with_a_login_in_flight(user: dict[str, Any]) -> None:
        epoch = await auth.ctx.sessions.epoch(user_id)  # what login reads before the password
        checked = await accounts.check_password(await accounts.find_by_id(user_id), STRONG_PASSWORD)
        assert checked is not None
        await real_delete(user)
        raced.append(await auth.ctx.sessions.create(user_id, "203.0.113.7", None, epoch))

    accounts.delete = delete_with_a_login_in_flight  # type: ignore[method-assign]
    await cli.delete_user(auth.ctx, argparse.Namespace(email=address, yes=True))
    [(session, refresh_token)] = raced
    token = auth.ctx.tokens.issue(
        user_id=user_id,
        session_id=session.id,
        email=address,
        username="",
        role="USER",
        provider="local",
        epoch=session.epoch,
    ).token
    headers = {"Authorization": f"Bearer {token}"}
    assert (await auth.client.get("/verify", headers=headers)).status_code == 401
    assert (await auth.client.get("/api/user", headers=headers)).status_code == 401
    assert (await auth.refresh(refresh_token)).status_code == 401
