"""A user ban ends the user's sessions once: a process that starts (or whose ban feed resets)
and learns a ban already applied writes nothing, no epoch bump and no revocation record."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from harness import Server
from services.auth.moderation_client import BanInfo
from tests.auth.api_helpers import email
from tests.auth.conftest import AuthApp
from tests.auth.test_revocation_feed import two_processes


async def _learn(app: AuthApp, ban: BanInfo) -> None:
    bans = app.ctx.protection.client.bans
    await bans.learn(ban)
    await bans.wait_callbacks(timeout_s=10)


async def _written(app: AuthApp, user_id: str) -> tuple[int, int]:
    records = await app.collection("auth_revocations").count_documents({"user_id": user_id})
    return records, await app.ctx.sessions.epoch(user_id)


async def test_a_ban_learned_again_by_another_process_writes_nothing(
    mongo: Server, app_factory: Callable[..., Any]
) -> None:
    async with two_processes(mongo, app_factory) as (first, second):
        body = await first.user(email())
        user_id = body["user"]["id"]
        ban = BanInfo(f"user:{user_id}", "abuse", int(time.time() * 1000) + 600_000)
        await _learn(first, ban)
        applied = await _written(first, user_id)
        assert applied[0] >= 2 and applied[1] == 1  # the live session and the epoch, once
        await _learn(second, ban)  # what a start or a feed reset does
        assert await _written(first, user_id) == applied
        longer = BanInfo(ban.subject, "abuse again", ban.expires_at_ms + 600_000)
        await _learn(second, longer)  # a new ban is applied, by whichever process sees it first
        records, epoch = await _written(first, user_id)
        assert epoch == applied[1] + 1 and records > applied[0]
