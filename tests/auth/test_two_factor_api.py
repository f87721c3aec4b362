"""Two-factor authentication over the API: enrolment, login in two steps, and every refusal
(each one issues no token and changes nothing)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import jsonschema_rs
import jwt

from services.auth.one_time_tokens import PASSWORD_RESET, OneTimeTokens
from tests.auth.api_helpers import assert_error, email
from tests.auth.conftest import STRONG_PASSWORD, AuthApp
from tests.auth.two_factor_helpers import (
    call,
    code,
    enrolled,
    secret_of,
    session_count,
    temp_token,
    verify_temp,
)


async def two_factor_doc(auth: AuthApp, user_id: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = await auth.collection("auth_two_factor").find_one({"_id": user_id})
    return found


# The whole path -------------------------------------------------------------------------------


async def test_enrol_confirm_then_login_needs_the_code_once(auth: AuthApp) -> None:
    user = await enrolled(auth)
    assert (await auth.get("/api/user", user.token)).json()["twoFactorEnabled"] is True
    stored = await auth.find_user(user.address)
    assert stored is not None and stored["twoFactorEnabled"] is True
    doc = await two_factor_doc(auth, user.user_id)
    assert doc is not None and user.secret not in str(doc)
    assert not any(c in str(doc) for c in user.backup_codes)

    sessions = await session_count(auth, user.user_id)
    temp = await temp_token(auth, user.address)
    assert await session_count(auth, user.user_id) == sessions  # the password alone: no session
    current = code(user.secret)
    answer = await verify_temp(auth, temp, token=current)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"token", "user"} and body["user"]["twoFactorEnabled"] is True
    cookies = answer.headers.get_list("set-cookie")
    assert any(h.startswith("refreshToken=") for h in cookies)
    assert any(h.startswith("authgate_device=") for h in cookies)
    assert (await auth.get("/api/user", body["token"])).status_code == 200

    # The same code again, on a fresh temp token: refused (its step is spent).
    replay = await verify_temp(auth, await temp_token(auth, user.address), token=current)
    assert_error(replay, 401, "invalid_2fa_code")

    # A backup code works once.
    backup = user.backup_codes[0]
    temp = await temp_token(auth, user.address)
    assert (await verify_temp(auth, temp, backupCode=backup)).status_code == 200
    again = await verify_temp(auth, await temp_token(auth, user.address), backupCode=backup)
    assert_error(again, 401, "invalid_2fa_code")

    # The used temp token is refused, even with a good code.
    assert_error(await verify_temp(auth, temp, backupCode=user.backup_codes[1]), 401, "invalid_2fa_token")

    # Disabling needs the password and a code.
    no_password = await call(auth, "disable", user.token, {"token": code(user.secret, 1)})
    assert_error(no_password, 401, "invalid_credentials")
    wrong = {"password": "not the password at all 123", "token": code(user.secret, 1)}
    assert_error(await call(auth, "disable", user.token, wrong), 401, "invalid_credentials")
    no_code = await call(auth, "disable", user.token, {"password": STRONG_PASSWORD})
    assert_error(no_code, 401, "invalid_2fa_code")
    assert (await auth.find_user(user.address) or {})["twoFactorEnabled"] is True
    done = await call(
        auth, "disable", user.token, {"current_password": STRONG_PASSWORD, "token": code(user.secret, 1)}
    )
    assert done.status_code == 200, done.text
    assert await two_factor_doc(auth, user.user_id) is None
    plain = await auth.login(user.address)
    assert plain.status_code == 200 and "token" in plain.json()
    assert plain.json()["user"]["twoFactorEnabled"] is False


async def test_a_temp_token_dies_at_the_sixth_attempt(auth: AuthApp) -> None:
    user = await enrolled(auth)
    temp = await temp_token(auth, user.address)
    for _ in range(5):
        assert_error(await verify_temp(auth, temp, token="000000"), 401, "invalid_2fa_code")
    assert_error(await verify_temp(auth, temp, token=code(user.secret)), 401, "invalid_2fa_token")
    # The good code was not spent on the dead token: a new one takes it.
    assert (
        await verify_temp(auth, await temp_token(auth, user.address), token=code(user.secret))
    ).status_code == 200


async def test_verify_and_regenerate(auth: AuthApp) -> None:
    user = await enrolled(auth)
    assert (await call(auth, "verify", user.token, {"token": code(user.secret)})).status_code == 200
    assert_error(
        await call(auth, "verify", user.token, {"token": code(user.secret)}), 401, "invalid_2fa_code"
    )
    assert_error(await call(auth, "verify", user.token, {"backupCode": "0" * 16}), 401, "invalid_2fa_code")

    assert_error(
        await call(auth, "backup/regenerate", user.token, {"backupCode": user.backup_codes[0]}),
        401,
        "invalid_credentials",
    )
    regenerated = await call(
        auth,
        "backup/regenerate",
        user.token,
        {"password": STRONG_PASSWORD, "backupCode": user.backup_codes[0]},
    )
    assert regenerated.status_code == 200, regenerated.text
    codes = regenerated.json()["backupCodes"]
    assert set(regenerated.json()) == {"backupCodes"} and len(codes) == 10
    assert all(len(c) >= 16 for c in codes)
    # The old codes are gone, the new ones work.
    assert_error(
        await call(auth, "verify", user.token, {"backupCode": user.backup_codes[1]}), 401, "invalid_2fa_code"
    )
    assert (await call(auth, "verify", user.token, {"backupCode": codes[0]})).status_code == 200


async def test_reenrolment_needs_password_and_code_and_keeps_the_old_factor_until_confirmed(
    auth: AuthApp,
) -> None:
    user = await enrolled(auth)
    assert_error(await call(auth, "enable", user.token), 401, "invalid_credentials")
    assert_error(
        (await auth.client.get("/api/auth/2fa/enable", headers={"Authorization": f"Bearer {user.token}"})),
        401,
        "invalid_credentials",
    )
    no_code = await call(auth, "enable", user.token, {"password": STRONG_PASSWORD})
    assert_error(no_code, 401, "invalid_2fa_code")
    again = await call(
        auth, "enable", user.token, {"password": STRONG_PASSWORD, "backupCode": user.backup_codes[0]}
    )
    assert again.status_code == 200, again.text
    new_secret = secret_of(again.json()["otpauthUrl"])
    # Pending only: the old authenticator still signs in.
    temp = await temp_token(auth, user.address)
    assert (await verify_temp(auth, temp, token=code(user.secret))).status_code == 200
    assert (await call(auth, "confirm", user.token, {"token": code(new_secret)})).status_code == 200
    temp = await temp_token(auth, user.address)
    assert_error(await verify_temp(auth, temp, token=code(user.secret, 1)), 401, "invalid_2fa_code")
    assert (await verify_temp(auth, temp, token=code(new_secret, 1))).status_code == 200


async def test_enable_answers_librechats_shape_and_is_pending(app_factory: Any) -> None:
    async with app_factory(APP_TITLE="Acme Chat") as auth:
        address = email()
        body = await auth.user(address)
        answer = (
            await auth.client.get(
                "/api/auth/2fa/enable", headers={"Authorization": f"Bearer {body['token']}"}
            )
        ).json()
        assert set(answer) == {"otpauthUrl", "backupCodes"} and len(answer["backupCodes"]) == 10
        secret = secret_of(answer["otpauthUrl"])
        assert answer["otpauthUrl"] == f"otpauth://totp/AcmeChat:{address}?secret={secret}&issuer=AcmeChat"
        assert (await auth.get("/api/user", body["token"])).json()["twoFactorEnabled"] is False
        assert (await auth.login(address)).json().get("token")  # pending: no second factor yet
        user = (await auth.get("/api/user", body["token"])).json()
        for hidden in ("totpSecret", "backupCodes", "pendingTotpSecret", "pending"):
            assert hidden not in user
        assert_error(
            await call(
                auth,
                "confirm",
                body["token"],
                {"token": "123456" if code(secret) != "123456" else "654321", "password": STRONG_PASSWORD},
            ),
            401,
            "invalid_2fa_code",
        )


async def test_an_access_token_alone_cannot_turn_2fa_on(auth: AuthApp) -> None:
    """Enrolment started without a body (LibreChat's older GET): confirm asks for the password."""
    address = email()
    body = await auth.user(address)
    bearer = {"Authorization": f"Bearer {body['token']}"}
    secret = secret_of((await auth.client.get("/api/auth/2fa/enable", headers=bearer)).json()["otpauthUrl"])
    assert_error(
        await call(auth, "confirm", body["token"], {"token": code(secret)}), 401, "invalid_credentials"
    )
    wrong = {"token": code(secret), "password": "not the password of this account"}
    assert_error(await call(auth, "confirm", body["token"], wrong), 401, "invalid_credentials")
    assert (await auth.get("/api/user", body["token"])).json()["twoFactorEnabled"] is False
    good = {"token": code(secret), "current_password": STRONG_PASSWORD}
    assert (await call(auth, "confirm", body["token"], good)).status_code == 200
    assert (await auth.login(address)).json()["twoFAPending"] is True


# Refusals -------------------------------------------------------------------------------------


async def test_calls_for_a_user_without_2fa_are_refused(auth: AuthApp) -> None:
    body = await auth.user(email())
    token = body["token"]
    proof = {"password": STRONG_PASSWORD, "token": "123456"}
    assert_error(await call(auth, "verify", token, {"token": "123456"}), 400, "2fa_not_enabled")
    assert_error(await call(auth, "disable", token, proof), 400, "2fa_not_enabled")
    assert_error(await call(auth, "backup/regenerate", token, proof), 400, "2fa_not_enabled")
    assert_error(await call(auth, "confirm", token, {"token": "123456"}), 400, "2fa_not_pending")
    for path in ("enable", "confirm", "verify", "disable", "backup/regenerate"):
        assert_error(await call(auth, path, None, {"token": "123456"}), 401, "unauthorized")


async def test_verify_temp_for_a_user_whose_2fa_was_turned_off(auth: AuthApp) -> None:
    user = await enrolled(auth)
    temp = await temp_token(auth, user.address)
    off = {"password": STRONG_PASSWORD, "token": code(user.secret)}
    assert (await call(auth, "disable", user.token, off)).status_code == 200
    assert_error(await verify_temp(auth, temp, token=code(user.secret, 1)), 400, "2fa_not_enabled")


async def test_bad_expired_foreign_and_access_tokens_are_not_temp_tokens(auth: AuthApp) -> None:
    user = await enrolled(auth)
    other = await enrolled(auth)
    sessions = await session_count(auth, user.user_id)
    good = code(user.secret)
    assert_error(await verify_temp(auth, "not-a-token", token=good), 401, "invalid_2fa_token")
    assert_error(await verify_temp(auth, user.token, token=good), 401, "invalid_2fa_token")
    # A temp token is not an access token either.
    temp = await temp_token(auth, user.address)
    assert_error(await auth.get("/api/user", temp), 401, "unauthorized")
    assert (await auth.client.get("/verify", headers={"Authorization": f"Bearer {temp}"})).status_code == 401
    # Its record moved to another user: refused.
    jti = jwt.decode(temp, options={"verify_signature": False})["jti"]
    records = auth.collection("auth_2fa_temp")
    await records.update_one({"_id": jti}, {"$set": {"user_id": other.user_id}})
    assert_error(await verify_temp(auth, temp, token=good), 401, "invalid_2fa_token")
    # Expired in the store (the claims' own expiry is PyJWT's).
    temp = await temp_token(auth, user.address)
    jti = jwt.decode(temp, options={"verify_signature": False})["jti"]
    past = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    await records.update_one({"_id": jti}, {"$set": {"expires_at": past}})
    assert_error(await verify_temp(auth, temp, token=good), 401, "invalid_2fa_token")
    assert await session_count(auth, user.user_id) == sessions
    # None of that spent the code.
    assert (await verify_temp(auth, await temp_token(auth, user.address), token=good)).status_code == 200


async def test_a_password_reset_keeps_the_second_factor(auth: AuthApp) -> None:
    user = await enrolled(auth)
    lifetime = dt.timedelta(minutes=5)
    issued = await OneTimeTokens(auth.ctx.store.tokens).issue(PASSWORD_RESET, user.user_id, lifetime)
    new_password = "a brand new long passphrase here"
    await auth.ctx.password_reset.reset(user.user_id, issued.token, new_password)
    temp = await temp_token(auth, user.address, new_password)
    assert (await verify_temp(auth, temp, token=code(user.secret))).status_code == 200


async def test_two_factor_answers_match_the_openapi_document(auth: AuthApp) -> None:
    doc = (await auth.client.get("/openapi.json")).json()

    def check(path: str, method: str, response: httpx.Response) -> None:
        entry = doc["paths"][path][method]["responses"][str(response.status_code)]
        schema = {**entry["content"]["application/json"]["schema"], "components": doc["components"]}
        jsonschema_rs.validate(schema, response.json())

    address = email()
    body = await auth.user(address)
    bearer = {"Authorization": f"Bearer {body['token']}"}
    check("/api/auth/2fa/verify", "post", await call(auth, "verify", body["token"], {"token": "123456"}))
    check("/api/auth/2fa/confirm", "post", await call(auth, "confirm", body["token"], {"token": "123456"}))
    enabled = await auth.client.get("/api/auth/2fa/enable", headers=bearer)
    check("/api/auth/2fa/enable", "get", enabled)
    enabled = await call(auth, "enable", body["token"], {"password": STRONG_PASSWORD})
    check("/api/auth/2fa/enable", "post", enabled)
    secret = secret_of(enabled.json()["otpauthUrl"])
    check(
        "/api/auth/2fa/confirm",
        "post",
        await call(auth, "confirm", body["token"], {"token": code(secret, -1)}),
    )
    login = await auth.login(address)
    check("/api/auth/login", "post", login)
    temp = login.json()["tempToken"]
    check("/api/auth/2fa/verify-temp", "post", await verify_temp(auth, temp, token="000000"))
    check("/api/auth/2fa/verify-temp", "post", await verify_temp(auth, temp, token=code(secret)))
    proof = {"password": STRONG_PASSWORD, "token": code(secret, 1)}
    check(
        "/api/auth/2fa/backup/regenerate", "post", await call(auth, "backup/regenerate", body["token"], proof)
    )
    check("/api/auth/2fa/disable", "post", await call(auth, "disable", body["token"], proof))
