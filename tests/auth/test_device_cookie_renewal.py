"""A browser's trusted device cookie is renewed at login with the epoch the gate just checked.

Login no longer reads the device epoch a second time for a cookie the gate found trusted; the
renewed cookie must stay trusted, and a bump of the epoch must still end it (fail closed).
"""

from __future__ import annotations

import secrets

from services.auth.accounts import normalize_email, user_id_of
from services.auth.devices import DEVICE_COOKIE
from tests.auth.conftest import STRONG_PASSWORD, AuthApp


async def test_a_renewed_device_cookie_stays_trusted_and_a_bump_ends_it(auth: AuthApp) -> None:
    address = f"device-{secrets.token_hex(4)}@example.com"
    assert (await auth.register(address)).status_code == 200
    first = await auth.login(address)
    assert first.status_code == 200
    cookie = first.cookies[DEVICE_COOKIE]
    account = auth.ctx.protection.account(normalize_email(address))
    devices = auth.ctx.protection.devices
    assert await devices.trusted(cookie, account) is not None

    auth.client.cookies.clear()
    renewed = await auth.client.post(
        "/api/auth/login",
        json={"email": address, "password": STRONG_PASSWORD},
        headers={"Cookie": f"{DEVICE_COOKIE}={cookie}"},
    )
    assert renewed.status_code == 200
    second = renewed.cookies[DEVICE_COOKIE]
    assert await devices.trusted(second, account) is not None

    user = await auth.find_user(normalize_email(address))
    assert user is not None
    await devices.bump_epoch(user_id_of(user))
    assert await devices.trusted(second, account) is None
