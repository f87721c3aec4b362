"""Every `expires_at` a client reads has one spelling: ISO-8601 UTC with milliseconds and `Z`."""

from __future__ import annotations

import asyncio
import datetime as dt
import re

from services.auth.sessions import RevokedByBan
from shared.timefmt import iso_from_ms, iso_from_seconds, iso_utc, parse_iso_ms
from tests.auth.conftest import AuthApp

ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def test_one_spelling_from_every_source() -> None:
    moment = dt.datetime(2026, 12, 5, 6, 7, 8, 123456, tzinfo=dt.UTC)
    assert iso_utc(moment) == "2026-12-05T06:07:08.123Z"
    assert iso_utc(moment.replace(tzinfo=None)) == "2026-12-05T06:07:08.123Z"  # naive is UTC
    assert iso_from_ms(parse_iso_ms("2026-12-05T06:07:08.123Z")) == "2026-12-05T06:07:08.123Z"
    assert iso_from_seconds(0.5) == "1970-01-01T00:00:00.500Z"


async def test_verify_ban_from_revocation_has_millisecond_expiry(auth: AuthApp) -> None:
    """The answer built from the revocation feed matches the one built from the ban feed."""
    body = await auth.user("time.format.ban@example.com")
    headers = {"Authorization": f"Bearer {body['token']}"}
    ends = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    await auth.ctx.sessions.revoke(
        user_id=body["user"]["id"], reason="user_banned", actor="test", ban=RevokedByBan("spam", ends)
    )
    response = None
    for _ in range(100):
        response = await auth.client.get("/verify", headers=headers)
        if response.status_code == 403:
            break
        await asyncio.sleep(0.05)
    assert response is not None and response.status_code == 403
    assert ISO_MS.fullmatch(response.json()["expires_at"]), response.json()["expires_at"]
