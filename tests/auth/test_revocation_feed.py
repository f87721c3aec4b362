"""The revocation feed is read by store-assigned position: no writer's clock can hide a record."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from harness import Server
from services.auth.sessions import utcnow
from tests.auth.api_helpers import email
from tests.auth.conftest import AuthApp, base_env


@asynccontextmanager
async def two_processes(
    mongo: Server, app_factory: Callable[..., Any]
) -> AsyncIterator[tuple[AuthApp, AuthApp]]:
    """Two auth apps over one database, as two replicas are: each reads the other's revocations."""
    shared = base_env(mongo.port)
    same = {k: shared[k] for k in ("MONGO_URI", "JWT_SECRET", "JWT_REFRESH_SECRET")}
    async with app_factory(**same) as writer, app_factory(**same) as reader:
        yield writer, reader


@pytest.mark.parametrize("skew_s", [-60, -8, 8, 60])
async def test_a_writer_with_a_skewed_clock_reaches_the_other_process(
    mongo: Server, app_factory: Callable[..., Any], skew_s: int
) -> None:
    async with two_processes(mongo, app_factory) as (writer, reader):
        body = await writer.user(email())
        await reader.ctx.revocations.refresh_once()  # the reader is running and current
        await reader.ctx.revocations.refresh_once()
        headers = {"Authorization": f"Bearer {body['token']}"}
        assert (await reader.client.get("/verify", headers=headers)).status_code == 200
        writer.ctx.sessions._clock = lambda: utcnow() + dt.timedelta(seconds=skew_s)
        response = await writer.client.post("/api/auth/logout", json={}, headers=headers)
        assert response.status_code == 200, response.text
        await reader.ctx.revocations.refresh_once()
        assert (await reader.client.get("/verify", headers=headers)).status_code == 401


async def test_a_position_committed_late_is_still_read(
    mongo: Server, app_factory: Callable[..., Any]
) -> None:
    async with two_processes(mongo, app_factory) as (writer, reader):
        await reader.ctx.revocations.refresh_once()
        early, late = await writer.ctx.store.revocations.allocate_positions(2)
        expires = utcnow() + dt.timedelta(minutes=20)
        revocations = writer.collection("auth_revocations")
        first_sid, second_sid = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        record = {"user_id": "u", "reason": "logout", "at": utcnow(), "expires_at": expires}
        await revocations.insert_one({**record, "sid": second_sid, "pos": late})
        await reader.ctx.revocations.refresh_once()
        assert reader.ctx.revocations.is_revoked(second_sid)
        assert not reader.ctx.revocations.is_revoked(first_sid)
        await revocations.insert_one({**record, "sid": first_sid, "pos": early})  # commits after `late`
        await reader.ctx.revocations.refresh_once()
        assert reader.ctx.revocations.is_revoked(first_sid)


async def test_a_writer_far_behind_is_not_forgotten_early(
    mongo: Server, app_factory: Callable[..., Any]
) -> None:
    """A record's `expires_at` is the writer's clock: 30 minutes behind, it is already past when
    written. The reader keeps what it read for the access-token lifetime by its own clock."""
    async with two_processes(mongo, app_factory) as (writer, reader):
        body = await writer.user(email())
        await reader.ctx.revocations.refresh_once()
        headers = {"Authorization": f"Bearer {body['token']}"}
        writer.ctx.sessions._clock = lambda: utcnow() - dt.timedelta(minutes=30)
        response = await writer.client.post("/api/auth/logout", json={}, headers=headers)
        assert response.status_code == 200, response.text
        for _ in range(60):  # past the poll that prunes forgotten entries
            await reader.ctx.revocations.refresh_once()
        assert (await reader.client.get("/verify", headers=headers)).status_code == 401
