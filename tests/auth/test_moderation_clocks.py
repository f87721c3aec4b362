"""Time-dependent behaviour of the ban cache and the device cookie, on clocks the tests advance."""

from __future__ import annotations

from pathlib import Path

import httpx

from services.auth.devices import DeviceCookies
from services.auth.moderation_client import ModerationClient
from tests.auth.conftest import AuthApp
from tests.auth.test_moderation_client import settings_for
from tests.moderation.conftest import ADMIN_SECRET, fresh_ip, fresh_user, launch


class WallClock:
    """Wall-clock milliseconds that move only when told."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms

    def seconds(self) -> float:
        return self.now_ms / 1000


async def test_cached_bans_end_when_the_clock_passes_their_expiry(work_dir: Path) -> None:
    service = launch(work_dir, "memory", None)
    clock = WallClock(0)
    client = ModerationClient(settings_for(service.url), wall_clock_ms=clock)
    user, ip = fresh_user(), fresh_ip()
    try:
        async with service.client(ADMIN_SECRET) as admin:
            for subject in (f"user:{user}", f"ip:{ip}"):
                body = {"subject": subject, "reason": "r", "duration_seconds": 600}
                response: httpx.Response = await admin.post("/v1/bans", json=body)
                assert response.status_code == 201
        await client.sync_bans()
        ban = client.is_banned(user_id=user)
        assert ban is not None
        clock.now_ms = ban.expires_at_ms - 1000
        assert client.is_banned(user_id=user) == ban and client.is_banned(ip=ip) is not None
        clock.now_ms = ban.expires_at_ms + 1000  # ten minutes later, without waiting them
        assert client.is_banned(user_id=user) is None and client.is_banned(ip=ip) is None
        await client.sync_bans()  # and the next sync drops them from memory
        assert not client.has_bans
    finally:
        await client.aclose()
        service.server.stop()


async def test_device_cookie_expires_on_its_clock(auth: AuthApp) -> None:
    clock = WallClock(1_700_000_000_000)
    devices = DeviceCookies("r" * 32, 60_000, auth.ctx.store.user_state, clock=clock.seconds)
    account = "account:" + "a" * 64
    cookie = devices.issue(fresh_user(), account, epoch=0)
    assert devices.parse(cookie, account) is not None
    assert await devices.trusted(cookie, account) is not None
    clock.now_ms += 59_000
    assert devices.parse(cookie, account) is not None
    clock.now_ms += 2_000  # past the cookie's lifetime
    assert devices.parse(cookie, account) is None
    assert await devices.trusted(cookie, account) is None
