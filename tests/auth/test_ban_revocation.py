"""A revocation caused by a ban tells /verify about the ban, so a process that learns of the
revocation before the ban feed still answers 403 `banned`, never a bare 401."""

from __future__ import annotations

import asyncio
import datetime as dt

from services.auth.sessions import RevokedByBan
from tests.auth.conftest import AuthApp
from tests.auth.test_time_format import ISO_MS


async def test_ban_revocation_answers_banned_on_verify(auth: AuthApp) -> None:
    body = await auth.user("banned.by.revocation@example.com")
    token, user_id = body["token"], body["user"]["id"]
    headers = {"Authorization": f"Bearer {token}"}
    assert (await auth.client.get("/verify", headers=headers)).status_code == 200
    ends = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    revoked = await auth.ctx.sessions.revoke(
        user_id=user_id, reason="user_banned", actor="test", ban=RevokedByBan("spam", ends)
    )
    assert revoked == 1
    record = await auth.collection("auth_revocations").find_one(
        {"reason": "user_banned", "sid": {"$ne": None}}
    )
    assert record is not None and record["ban_reason"] == "spam"
    # This process's moderation knows no ban: the answer comes from the revocation feed alone.
    assert not auth.ctx.protection.client.has_bans
    response = None
    for _ in range(100):
        response = await auth.client.get("/verify", headers=headers)
        if response.status_code == 403:
            break
        await asyncio.sleep(0.05)
    assert response is not None and response.status_code == 403
    assert response.json()["code"] == "banned"
    assert response.json()["reason"] == "spam"
    # The same spelling as the answer built from the ban feed: milliseconds and `Z`.
    assert ISO_MS.fullmatch(response.json()["expires_at"]), response.json()["expires_at"]
    assert 3500 <= int(response.headers["retry-after"]) <= 3601


async def test_plain_revocation_still_answers_401(auth: AuthApp) -> None:
    body = await auth.user("plain.revocation@example.com")
    headers = {"Authorization": f"Bearer {body['token']}"}
    await auth.ctx.sessions.revoke(user_id=body["user"]["id"], reason="admin_revoked", actor="test")
    await asyncio.sleep(0.5)  # past a poll of the revocation feed
    response = await auth.client.get("/verify", headers=headers)
    assert response.status_code == 401
