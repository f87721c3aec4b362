"""A LibreChat enrolment (secret under CREDS_KEY with `encryptV3`, unsalted backup-code hashes)
signs in with its existing authenticator and codes; without CREDS_KEY it is refused after the
password with 403 `2fa_required`."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
from collections.abc import Callable
from typing import Any

from tests.auth.api_helpers import assert_error, email
from tests.auth.conftest import AuthApp
from tests.auth.two_factor_helpers import (
    call,
    code,
    encrypt_v3,
    librechat_secret,
    temp_token,
    verify_temp,
)

CREDS_KEY = secrets.token_hex(32)


async def librechat_user(auth: AuthApp) -> tuple[str, str, list[str]]:
    """A registered user given 2FA exactly as LibreChat's confirm step leaves it."""
    address = email()
    assert (await auth.register(address)).status_code == 200
    secret = librechat_secret()
    plain = [os.urandom(4).hex() for _ in range(10)]  # LibreChat: 8 hex characters each
    fields = {
        "twoFactorEnabled": True,
        "totpSecret": encrypt_v3(secret, CREDS_KEY),
        "backupCodes": [
            {"codeHash": hashlib.sha256(c.encode()).hexdigest(), "used": False, "usedAt": None}
            for c in plain[:9]
        ]
        + [
            {
                "codeHash": hashlib.sha256(plain[9].encode()).hexdigest(),
                "used": True,
                "usedAt": dt.datetime.now(dt.UTC),
            }
        ],
    }
    await auth.collection("users").update_one({"email": address}, {"$set": fields})
    return address, secret, plain


async def test_a_librechat_enrolment_signs_in_with_creds_key(app_factory: Callable[..., Any]) -> None:
    async with app_factory(CREDS_KEY=CREDS_KEY) as auth:
        address, secret, backup = await librechat_user(auth)
        temp = await temp_token(auth, address)
        answer = await verify_temp(auth, temp, token=code(secret))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["user"]["twoFactorEnabled"] is True
        # Its backup codes work, once each.
        assert (
            await verify_temp(auth, await temp_token(auth, address), backupCode=backup[0])
        ).status_code == 200
        again = await verify_temp(auth, await temp_token(auth, address), backupCode=backup[0])
        assert_error(again, 401, "invalid_2fa_code")
        # And the code's step is spent here too (LibreChat would take it again).
        replay = await verify_temp(auth, await temp_token(auth, address), token=code(secret))
        assert_error(replay, 401, "invalid_2fa_code")
        assert (await call(auth, "verify", body["token"], {"backupCode": backup[1]})).status_code == 200
        # A code LibreChat had already marked used stays used.
        used = await call(auth, "verify", body["token"], {"backupCode": backup[9]})
        assert_error(used, 401, "invalid_2fa_code")


async def test_without_creds_key_it_is_refused_after_the_password(auth: AuthApp) -> None:
    address, _, _ = await librechat_user(auth)
    assert_error(await auth.login(address), 403, "2fa_required")
    assert_error(await auth.login(address, "not the password at all 123"), 401, "invalid_credentials")
    stored = await auth.find_user(address)
    assert (
        stored is not None and stored["twoFactorEnabled"] is True and stored["totpSecret"].startswith("v3:")
    )


async def test_a_wrong_creds_key_is_refused_like_a_missing_one(app_factory: Callable[..., Any]) -> None:
    async with app_factory(CREDS_KEY=secrets.token_hex(32)) as auth:
        address, _, _ = await librechat_user(auth)
        assert_error(await auth.login(address), 403, "2fa_required")
