"""A ban's session revocation that runs after the ban was lifted ends only what the ban was
meant to end: the sessions that existed when it began. A session the user opened after the
unban stays valid (/verify 200, refresh 200), and its tokens are not refused by an epoch bump.

The ban and the unban go through moderation's admin API and reach the app through its ban
feed, so the ban carries moderation's own start time. The app's ban callback is held back
until the user has signed in again: what a replica's background revocation does when a ban
is lifted within a second.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from harness import eventually, shared_moderation
from services.auth.moderation_client import BanInfo
from services.auth.moderation_client.bans import BanCache
from services.auth.sessions import BAN_CLOCK_TOLERANCE_MS, RevokedByBan, StaleCredentials, utcnow
from shared.timefmt import iso_from_ms
from tests.auth.api_helpers import email
from tests.auth.conftest import AuthApp


@pytest.fixture
async def admin() -> AsyncIterator[httpx.AsyncClient]:
    moderation = shared_moderation()
    headers = {"Authorization": f"Bearer {moderation.admin_key}"}
    async with httpx.AsyncClient(base_url=moderation.server.url, headers=headers, timeout=10) as client:
        yield client


def hold_ban_callbacks(cache: BanCache) -> tuple[asyncio.Event, list[BanInfo]]:
    """Run the app's own ban callbacks only once the returned event is set."""
    release = asyncio.Event()
    seen: list[BanInfo] = []
    original = list(cache._callbacks)

    async def held(user_id: str, ban: BanInfo) -> None:
        seen.append(ban)
        await release.wait()
        for callback in original:
            result = callback(user_id, ban)
            if result is not None:
                await result

    cache._callbacks[:] = [held]
    return release, seen


async def verify(app: AuthApp, token: str) -> int:
    response = await app.client.get("/verify", headers={"Authorization": f"Bearer {token}"})
    return response.status_code


async def test_a_late_ban_revocation_spares_the_session_opened_after_the_unban(
    auth: AuthApp, admin: httpx.AsyncClient
) -> None:
    address = email()
    before = await auth.user(address)
    user_id = before["user"]["id"]
    cache = auth.ctx.protection.client.bans
    release, seen = hold_ban_callbacks(cache)

    banned = await admin.post(
        "/v1/bans", json={"subject": f"user:{user_id}", "reason": "spam", "duration_seconds": 600}
    )
    assert banned.status_code == 201, banned.text
    await eventually(lambda: bool(seen), "the ban feed to bring the ban (its revocation held back)")
    started, started_ms = seen[0].created_at, seen[0].created_at_ms  # carried by the feed
    assert started is not None and started_ms is not None
    assert iso_from_ms(started_ms) == banned.json()["created_at"]  # moderation's start of the ban

    assert (await admin.delete(f"/v1/bans/user:{user_id}")).status_code == 200
    await eventually(lambda: cache.is_banned(user_id=user_id) is None, "the unban to reach the cache")
    # Past the clock tolerance of the ban's start: this sign-in is after the ban, not at its edge.
    cut = started + dt.timedelta(milliseconds=BAN_CLOCK_TOLERANCE_MS)
    await asyncio.sleep(max(0.0, (cut - utcnow()).total_seconds()) + 0.05)
    after = await auth.login_body(address)

    release.set()  # the revocation runs now, after the unban and the new sign-in
    await cache.wait_callbacks(timeout_s=10)

    # The session that existed when the ban began is ended; the ban is lifted, so it answers
    # 401 (sign in again), not `banned` until the lifted ban's expiry ...
    assert await verify(auth, before["token"]) == 401
    assert (await auth.refresh(before["refresh_token"])).status_code == 401
    # ... the one opened after the unban is not, and its tokens keep working.
    assert await verify(auth, after["token"]) == 200
    refreshed = await auth.refresh(after["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert await verify(auth, refreshed.json()["token"]) == 200
    sessions = auth.collection("auth_sessions")
    assert await sessions.count_documents({"user_id": user_id, "revoked_at": None}) == 1
    assert await sessions.count_documents({"user_id": user_id, "revoked_reason": "user_banned"}) == 1


async def test_a_timely_ban_revocation_still_ends_a_login_checked_before_the_ban(auth: AuthApp) -> None:
    """The epoch still does its work when no session was opened after the ban: a login that read
    the epoch before the ban and stores its session after the sweep is ended at once."""
    body = await auth.user(email())
    user_id = body["user"]["id"]
    sessions = auth.ctx.sessions
    epoch = await sessions.epoch(user_id)  # a login's read, before its password check
    ends = utcnow() + dt.timedelta(minutes=10)
    revoked = await sessions.revoke_for_ban(user_id, RevokedByBan("spam", ends), started_at=utcnow())
    assert revoked == 1 and await sessions.epoch(user_id) == epoch + 1
    with pytest.raises(StaleCredentials):
        await sessions.create(user_id, "203.0.113.10", "test", epoch=epoch)
    assert await verify(auth, body["token"]) in (401, 403)


async def test_a_ban_without_its_start_is_dated_when_learned(auth: AuthApp) -> None:
    """An answer from a moderation that sends no start time: the cache dates the ban when it
    learns it, never earlier than the ban began; the feed's `at` and the list's `created_at` count."""
    feed = BanInfo.from_api(
        {
            "subject": "user:x",
            "reason": "r",
            "expires_at": "2030-01-01T00:00:00.000Z",
            "at": "2029-12-31T23:00:00.000Z",
        }
    )
    assert feed.created_at_ms is not None and iso_from_ms(feed.created_at_ms) == "2029-12-31T23:00:00.000Z"
    listed = BanInfo.from_api(
        {
            "subject": "user:x",
            "reason": "r",
            "expires_at": "2030-01-01T00:00:00.000Z",
            "created_at": "2029-12-31T22:00:00.000Z",
        }
    )
    assert (
        listed.created_at_ms is not None and iso_from_ms(listed.created_at_ms) == "2029-12-31T22:00:00.000Z"
    )
    cache = auth.ctx.protection.client.bans
    release, seen = hold_ban_callbacks(cache)
    user_id = "0123456789abcdef01234567"
    old = BanInfo.from_api(
        {
            "subject": f"user:{user_id}",
            "reason": "r",
            "expires_at": iso_from_ms(int(time.time() * 1000) + 600_000),
        }
    )
    assert old.created_at_ms is None
    learned_from = int(time.time() * 1000)
    await cache.learn(old)
    await eventually(lambda: bool(seen), "the ban callback")
    started = seen[0].created_at_ms
    assert started is not None and learned_from <= started <= int(time.time() * 1000)
    release.set()
    await cache.wait_callbacks(timeout_s=10)
