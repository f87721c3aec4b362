"""A revocation caused by a ban tells /verify about the ban, so a process that learns of the
revocation from the revocation feed before the ban feed still answers 403 `banned`, never a bare 401.

Two apps share one database, as two replicas do: the writer revokes, the reader learns of it
only by reading the revocation feed (one explicit poll, no sleeping), and knows no ban.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from harness import Server
from services.auth.sessions import RevokedByBan
from tests.auth.api_helpers import email
from tests.auth.test_revocation_feed import two_processes
from tests.auth.test_time_format import ISO_MS


async def test_ban_revocation_answers_banned_on_verify(
    mongo: Server, app_factory: Callable[..., Any]
) -> None:
    async with two_processes(mongo, app_factory) as (writer, reader):
        body = await writer.user(email())
        token, user_id = body["token"], body["user"]["id"]
        headers = {"Authorization": f"Bearer {token}"}
        await reader.ctx.revocations.refresh_once()
        assert (await reader.client.get("/verify", headers=headers)).status_code == 200
        ends = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        revoked = await writer.ctx.sessions.revoke(
            user_id=user_id, reason="user_banned", actor="test", ban=RevokedByBan("spam", ends)
        )
        assert revoked == 1
        record = await writer.collection("auth_revocations").find_one(
            {"reason": "user_banned", "sid": {"$ne": None}}
        )
        assert record is not None and record["ban_reason"] == "spam"
        # The reader's moderation knows no ban: the answer comes from the revocation feed alone.
        assert not reader.ctx.protection.client.has_bans
        await reader.ctx.revocations.refresh_once()
        response = await reader.client.get("/verify", headers=headers)
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "banned"
        assert response.json()["reason"] == "spam"
        # The same spelling as the answer built from the ban feed: milliseconds and `Z`.
        assert ISO_MS.fullmatch(response.json()["expires_at"]), response.json()["expires_at"]
        assert 3500 <= int(response.headers["retry-after"]) <= 3601


async def test_plain_revocation_still_answers_401(mongo: Server, app_factory: Callable[..., Any]) -> None:
    async with two_processes(mongo, app_factory) as (writer, reader):
        body = await writer.user(email())
        headers = {"Authorization": f"Bearer {body['token']}"}
        await reader.ctx.revocations.refresh_once()
        assert (await reader.client.get("/verify", headers=headers)).status_code == 200
        await writer.ctx.sessions.revoke(user_id=body["user"]["id"], reason="admin_revoked", actor="test")
        await reader.ctx.revocations.refresh_once()
        response = await reader.client.get("/verify", headers=headers)
        assert response.status_code == 401, response.text
