"""/api/auth/webauthn/*: real attestations and assertions from a software authenticator.

The `webauthn` library verifies every response for real (signature, rpIdHash, flags, origin,
challenge); these tests break one property at a time and check the answer, the audit trail and
that nothing was half-written.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness import ROOT, ModerationHandle, run_authgate, start_moderation
from harness.smtp import SmtpServer
from services.auth.moderation_client import BanInfo
from tests.auth.api_helpers import assert_error, email
from tests.auth.conftest import STRONG_PASSWORD, AuthApp
from tests.auth.portal_helpers import PORTAL, portal_app
from tests.auth.test_portal_recovery import mail_to, portal_mail_env
from tests.auth.two_factor_helpers import enrolled
from tests.auth.webauthn_helpers import AT, BE, BS, UP, UV, SoftAuthenticator

API = "/api/auth/webauthn"
LOGIN_MAX = 3

WITH_PASSWORD = {"password": STRONG_PASSWORD}  # registering a passkey needs the current password


@dataclass
class Member:
    address: str
    token: str
    user_id: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def member(auth: AuthApp) -> Member:
    address = email()
    body = await auth.user(address)
    return Member(address, body["token"], body["user"]["id"])


async def register(
    auth: AuthApp, who: Member, authenticator: SoftAuthenticator, name: str | None = None, **knobs: Any
) -> httpx.Response:
    options = await auth.client.post(f"{API}/register/options", json=WITH_PASSWORD, headers=who.bearer)
    assert options.status_code == 200, options.text
    credential = authenticator.create(options.json(), **knobs)
    body: dict[str, Any] = {"credential": credential}
    if name is not None:
        body["name"] = name
    return await auth.client.post(f"{API}/register/verify", json=body, headers=who.bearer)


async def login_options(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post(f"{API}/login/options")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def sign_in(
    client: httpx.AsyncClient, authenticator: SoftAuthenticator, in_body: bool = False, **knobs: Any
) -> httpx.Response:
    assertion = authenticator.get(await login_options(client), **knobs)
    body = {"credential": assertion, "refresh_token_in_body": in_body}
    return await client.post(f"{API}/login/verify", json=body)


@pytest.fixture
async def auth(app_factory: Callable[..., Any]) -> AsyncIterator[AuthApp]:
    async with portal_app(app_factory) as running:
        yield running


@pytest.fixture
def key() -> SoftAuthenticator:
    return SoftAuthenticator(PORTAL)


async def audit_events(auth: AuthApp, user_id: str | None = None) -> list[dict[str, Any]]:
    query = {"user_id": user_id} if user_id else {}
    return [doc async for doc in auth.collection("auth_audit").find(query)]


async def test_register_then_sign_in_without_password_or_second_factor(
    auth: AuthApp, key: SoftAuthenticator
) -> None:
    who = await member(auth)
    options = (
        await auth.client.post(f"{API}/register/options", json=WITH_PASSWORD, headers=who.bearer)
    ).json()
    assert options["rp"] == {"id": "auth.test", "name": "authgate"}
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["excludeCredentials"] == []
    registered = await auth.client.post(
        f"{API}/register/verify",
        json={"credential": key.create(options), "name": "Laptop"},
        headers=who.bearer,
    )
    assert registered.status_code == 201, registered.text
    passkey = registered.json()["passkey"]
    assert passkey["name"] == "Laptop" and passkey["last_used"] is None and passkey["backed_up"] is True
    # The next registration excludes it.
    again = (await auth.client.post(f"{API}/register/options", json=WITH_PASSWORD, headers=who.bearer)).json()
    assert [c["id"] for c in again["excludeCredentials"]] == [key.credentials[0].id]

    browser = auth.new_client()
    request = await login_options(browser)
    assert request["allowCredentials"] == [] and request["userVerification"] == "required"
    assert request["rpId"] == "auth.test"
    answer = await browser.post(f"{API}/login/verify", json={"credential": key.get(request)})
    assert answer.status_code == 200, answer.text
    assert answer.json()["user"]["email"] == who.address
    assert browser.cookies.get("refreshToken")  # a normal session, as after /api/auth/login
    verified = await auth.new_client().get(
        "/verify", headers={"Authorization": f"Bearer {answer.json()['token']}"}
    )
    assert verified.status_code == 200 and verified.headers["x-auth-email"] == who.address
    sessions = [s async for s in auth.collection("auth_sessions").find({"user_id": who.user_id})]
    assert sorted(tuple(s["amr"]) for s in sessions) == [("hwk",), ("pwd",)]
    listed = (await auth.client.get(f"{API}/credentials", headers=who.bearer)).json()["passkeys"]
    assert len(listed) == 1 and listed[0]["last_used"] is not None
    assert set(listed[0]) == {"id", "name", "created", "last_used", "transports", "backed_up"}
    events = {e["event"] for e in await audit_events(auth, who.user_id)}
    assert {"passkey_registered", "passkey_login", "login"} <= events
    # A service client gets the refresh token in the body; it rotates like any other.
    service = await sign_in(auth.new_client(), key, in_body=True)
    assert (
        service.status_code == 200
        and (await auth.refresh(service.json()["refresh_token"])).status_code == 200
    )


async def test_a_two_factor_account_signs_in_with_its_passkey_alone(
    auth: AuthApp, key: SoftAuthenticator
) -> None:
    enrolled_user = await enrolled(auth)
    who = Member(enrolled_user.address, enrolled_user.token, enrolled_user.user_id)
    assert (await register(auth, who, key)).status_code == 201
    answer = await sign_in(auth.new_client(), key)
    assert answer.status_code == 200 and "twoFAPending" not in answer.json()
    assert answer.json()["user"]["twoFactorEnabled"] is True
    session = await auth.collection("auth_sessions").find_one({"user_id": who.user_id, "amr": ["hwk"]})
    assert session is not None


async def test_an_authenticator_without_a_counter_signs_in_again(auth: AuthApp) -> None:
    who = await member(auth)
    key = SoftAuthenticator(PORTAL, counter_step=0)
    assert (await register(auth, who, key)).status_code == 201
    for _ in range(2):
        assert (await sign_in(auth.new_client(), key)).status_code == 200


async def test_a_challenge_is_single_use(auth: AuthApp, key: SoftAuthenticator) -> None:
    who = await member(auth)
    await register(auth, who, key)
    assertion = key.get(await login_options(auth.client))
    first = await auth.client.post(f"{API}/login/verify", json={"credential": assertion})
    assert first.status_code == 200
    replayed = await auth.new_client().post(f"{API}/login/verify", json={"credential": assertion})
    assert_error(replayed, 400, "passkey_challenge_invalid")
    # A challenge nobody issued, and a registration challenge answered as a sign-in, likewise.
    forged = key.get({"challenge": "A" * 43})
    assert_error(
        await auth.client.post(f"{API}/login/verify", json={"credential": forged}),
        400,
        "passkey_challenge_invalid",
    )
    creation = (
        await auth.client.post(f"{API}/register/options", json=WITH_PASSWORD, headers=who.bearer)
    ).json()
    crossed = key.get({"challenge": creation["challenge"]})
    assert_error(
        await auth.client.post(f"{API}/login/verify", json={"credential": crossed}),
        400,
        "passkey_challenge_invalid",
    )


async def test_an_expired_challenge_is_refused(auth: AuthApp, key: SoftAuthenticator) -> None:
    who = await member(auth)
    await register(auth, who, key)
    options = await login_options(auth.client)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    await auth.collection("auth_webauthn_challenges").update_many({}, {"$set": {"expires_at": past}})
    answer = await auth.client.post(f"{API}/login/verify", json={"credential": key.get(options)})
    assert_error(answer, 400, "passkey_challenge_invalid")
    assert "refreshToken" not in auth.client.cookies


@pytest.mark.parametrize(
    "knobs",
    [
        {"origin": "https://evil.example"},
        {"origin": "https://auth.test.evil.example"},
        {"rp_id": "evil.example"},
        {"flags": UP | BE | BS},  # no user verification
        {"flags": UV},  # no user presence
    ],
    ids=["foreign_origin", "look_alike_origin", "rp_id_hash", "no_uv", "no_up"],
)
async def test_an_assertion_failing_a_check_is_refused(
    auth: AuthApp, key: SoftAuthenticator, knobs: dict[str, Any]
) -> None:
    who = await member(auth)
    await register(auth, who, key)
    before = await auth.collection("auth_sessions").count_documents({"user_id": who.user_id})
    answer = await sign_in(auth.client, key, **knobs)
    assert_error(answer, 401, "invalid_passkey")
    assert await auth.collection("auth_sessions").count_documents({"user_id": who.user_id}) == before
    failures = [e for e in await audit_events(auth, who.user_id) if e["event"] == "passkey_login_failed"]
    assert failures and failures[-1]["reason"] == "invalid_assertion"
    # The same authenticator, behaving, still works (the refusal spent only its challenge).
    assert (await sign_in(auth.client, key)).status_code == 200


@pytest.mark.parametrize(
    "knobs",
    [
        {"origin": "https://evil.example"},
        {"rp_id": "evil.example"},
        {"flags": UP | AT},  # no user verification
    ],
    ids=["foreign_origin", "rp_id_hash", "no_uv"],
)
async def test_a_registration_failing_a_check_is_refused(
    auth: AuthApp, key: SoftAuthenticator, knobs: dict[str, Any]
) -> None:
    who = await member(auth)
    answer = await register(auth, who, key, **knobs)
    assert_error(answer, 400, "invalid_passkey_registration")
    assert await auth.collection("auth_passkeys").count_documents({"user_id": who.user_id}) == 0


async def test_a_registration_challenge_belongs_to_its_user(auth: AuthApp, key: SoftAuthenticator) -> None:
    owner, thief = await member(auth), await member(auth)
    options = (
        await auth.client.post(f"{API}/register/options", json=WITH_PASSWORD, headers=owner.bearer)
    ).json()
    answer = await auth.client.post(
        f"{API}/register/verify", json={"credential": key.create(options)}, headers=thief.bearer
    )
    assert_error(answer, 400, "passkey_challenge_invalid")
    assert await auth.collection("auth_passkeys").count_documents({}) == 0


async def test_an_unknown_credential_is_refused(auth: AuthApp, key: SoftAuthenticator) -> None:
    who = await member(auth)
    stranger = SoftAuthenticator(PORTAL)
    stranger.create({"rp": {"id": "auth.test"}, "user": {"id": "dXNlcg"}, "challenge": "AAAA"})
    answer = await sign_in(auth.client, stranger)
    assert_error(answer, 401, "invalid_passkey")
    assert any(e.get("reason") == "unknown_credential" for e in await audit_events(auth))
    # Another user's handle on a registered credential is refused too.
    await register(auth, who, key)
    assert_error(await sign_in(auth.client, key, user_handle=b"someone-else"), 401, "invalid_passkey")


async def test_a_counter_that_goes_back_is_refused_as_a_possible_clone(
    auth: AuthApp, key: SoftAuthenticator
) -> None:
    who = await member(auth)
    await register(auth, who, key)
    assert (await sign_in(auth.client, key, sign_count=5)).status_code == 200
    for count in (5, 4):
        assert_error(await sign_in(auth.new_client(), key, sign_count=count), 401, "invalid_passkey")
    clones = [e for e in await audit_events(auth, who.user_id) if e["event"] == "passkey_counter_regression"]
    assert [(c["outcome"], c["stored"], c["presented"]) for c in clones] == [
        ("possible_clone", 5, 5),
        ("possible_clone", 5, 4),
    ]
    stored = await auth.collection("auth_passkeys").find_one({"user_id": who.user_id})
    assert stored["sign_count"] == 5
    assert (await sign_in(auth.client, key, sign_count=6)).status_code == 200


async def test_rename_and_remove(auth: AuthApp, key: SoftAuthenticator) -> None:
    who, other = await member(auth), await member(auth)
    passkey_id = (await register(auth, who, key, name="Phone")).json()["passkey"]["id"]
    path = f"{API}/credentials/{passkey_id}"
    # Another user's passkey does not exist for them.
    assert_error(await auth.client.patch(path, json={"name": "mine"}, headers=other.bearer), 404, "not_found")
    assert_error(await auth.client.delete(path, headers=other.bearer), 404, "not_found")
    assert_error(await auth.client.patch(path, json={"name": ""}, headers=who.bearer), 422, "invalid_input")
    assert_error(
        await auth.client.patch(path, json={"name": {"$gt": ""}}, headers=who.bearer), 422, "invalid_input"
    )
    renamed = await auth.client.patch(path, json={"name": "Work phone"}, headers=who.bearer)
    assert renamed.status_code == 200
    listed = (await auth.client.get(f"{API}/credentials", headers=who.bearer)).json()["passkeys"]
    assert [p["name"] for p in listed] == ["Work phone"]
    # A user with a password may remove their only passkey.
    assert (await auth.client.delete(path, headers=who.bearer)).status_code == 200
    assert_error(await auth.client.delete(path, headers=who.bearer), 404, "not_found")
    assert any(e["event"] == "passkey_removed" for e in await audit_events(auth, who.user_id))
    assert_error(await sign_in(auth.client, key), 401, "invalid_passkey")


async def test_removing_the_last_sign_in_method_is_refused(auth: AuthApp) -> None:
    who = await member(auth)
    first, second = SoftAuthenticator(PORTAL), SoftAuthenticator(PORTAL)
    ids = [(await register(auth, who, k)).json()["passkey"]["id"] for k in (first, second)]
    # A social-only account: no password.
    users = auth.collection("users")
    await users.update_one(
        {"email": who.address}, {"$unset": {"password": ""}, "$set": {"provider": "openid"}}
    )
    assert (await auth.client.delete(f"{API}/credentials/{ids[0]}", headers=who.bearer)).status_code == 200
    refused = await auth.client.delete(f"{API}/credentials/{ids[1]}", headers=who.bearer)
    assert_error(refused, 409, "last_sign_in_method")
    assert await auth.collection("auth_passkeys").count_documents({"user_id": who.user_id}) == 1
    assert (await sign_in(auth.client, second)).status_code == 200


async def test_deleting_a_user_deletes_their_passkeys(
    auth: AuthApp, key: SoftAuthenticator, tmp_path: Path
) -> None:
    who, other = await member(auth), await member(auth)
    await register(auth, who, key)
    await register(auth, other, SoftAuthenticator(PORTAL))
    settings = auth.settings
    env = {
        "AUTHGATE_ENV": "test",
        "MONGO_URI": settings.mongo_uri,
        "JWT_SECRET": settings.jwt_secret,
        "JWT_REFRESH_SECRET": settings.jwt_refresh_secret,
        "TOTP_ENCRYPTION_KEY": settings.totp_encryption_key,
        "MODERATION_URL": "http://127.0.0.1:1",
        "MODERATION_API_KEY": "k" * 43,
        "PYTHONPATH": str(ROOT),  # this checkout's code, whichever checkout the venv was installed from
    }
    done = run_authgate(env, tmp_path, "delete-user", who.address, "--yes")
    assert done.returncode == 0, done.stderr
    passkeys = auth.collection("auth_passkeys")
    assert await passkeys.count_documents({"user_id": who.user_id}) == 0
    assert await passkeys.count_documents({"user_id": other.user_id}) == 1
    assert_error(await sign_in(auth.client, key), 401, "invalid_passkey")


async def test_an_unverified_or_vanished_account_is_refused(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory, ALLOW_UNVERIFIED_EMAIL_LOGIN="false") as auth:
        users = auth.collection("users")
        address = email()
        await auth.register(address)
        await users.update_one({"email": address}, {"$set": {"emailVerified": True}})
        body = await auth.login_body(address)
        who = Member(address, body["token"], body["user"]["id"])
        key = SoftAuthenticator(PORTAL)
        await register(auth, who, key)
        await users.update_one({"email": address}, {"$set": {"emailVerified": False}})
        assert_error(await sign_in(auth.new_client(), key), 422, "email_not_verified")
        await users.delete_one({"email": address})  # gone behind authgate's back
        assert_error(await sign_in(auth.new_client(), key), 401, "invalid_passkey")
        assert any(e.get("reason") == "no_user" for e in await audit_events(auth, who.user_id))


async def test_registration_needs_a_signed_in_user(auth: AuthApp) -> None:
    assert_error(await auth.client.post(f"{API}/register/options"), 401, "unauthorized")
    assert_error(await auth.client.get(f"{API}/credentials"), 401, "unauthorized")
    bearer = {"Authorization": "Bearer not-a-token"}
    assert_error(
        await auth.client.post(f"{API}/register/verify", json={}, headers=bearer), 401, "unauthorized"
    )


async def test_malformed_bodies_are_422_never_500(auth: AuthApp, key: SoftAuthenticator) -> None:
    who = await member(auth)
    await register(auth, who, key)
    good = key.get(await login_options(auth.client))
    for broken in (
        {},
        {"credential": {**good, "type": "password"}},
        {"credential": {**good, "id": {"$ne": None}}},
        {"credential": {**good, "response": {**good["response"], "signature": "!!"}}},
    ):
        assert_error(await auth.client.post(f"{API}/login/verify", json=broken), 422, "invalid_input")
    garbled = {**good, "response": {**good["response"], "clientDataJSON": "AAAA"}}
    answer = await auth.client.post(f"{API}/login/verify", json={"credential": garbled})
    assert_error(answer, 400, "passkey_challenge_invalid")
    junk = {**good, "response": {**good["response"], "authenticatorData": "AAAA"}}
    assert_error(
        await auth.client.post(f"{API}/login/verify", json={"credential": junk}), 401, "invalid_passkey"
    )


async def test_without_a_relying_party_passkeys_are_off(app_factory: Callable[..., Any]) -> None:
    async with app_factory() as auth:
        who = await member(auth)
        assert_error(await auth.client.post(f"{API}/login/options"), 404, "passkeys_disabled")
        answer = await auth.client.post(f"{API}/register/options", json=WITH_PASSWORD, headers=who.bearer)
        assert_error(answer, 404, "passkeys_disabled")


async def test_a_banned_address_and_a_banned_user_cannot_sign_in(
    auth: AuthApp, key: SoftAuthenticator
) -> None:
    who = await member(auth)
    await register(auth, who, key)
    ends = int(time.time() * 1000) + 600_000
    peer = "198.51.100.91"
    await auth.ctx.protection.client.bans.learn(BanInfo(f"ip:{peer}", "abuse", ends))
    assert_error(await auth.new_client(peer).post(f"{API}/login/options"), 403, "banned")
    await auth.ctx.protection.client.bans.learn(BanInfo(f"user:{who.user_id}", "abuse", ends))
    refused = await sign_in(auth.new_client(), key)
    assert_error(refused, 403, "banned")
    assert "refreshToken" not in refused.headers.get("set-cookie", "")


@pytest.fixture(scope="module")
def login_limits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModerationHandle]:
    handle = start_moderation(tmp_path_factory.mktemp("passkeys"), {"LOGIN_MAX": str(LOGIN_MAX)})
    try:
        yield handle
    finally:
        handle.server.stop(sig_kill=True)


async def test_login_options_count_as_logins(
    app_factory: Callable[..., Any], login_limits: ModerationHandle
) -> None:
    async with portal_app(app_factory, **login_limits.auth_env()) as auth:
        client = auth.new_client(f"198.18.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}")
        for _ in range(LOGIN_MAX):
            assert (await client.post(f"{API}/login/options")).status_code == 200
        limited = await client.post(f"{API}/login/options")
        assert_error(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) >= 1


async def test_registering_a_passkey_needs_the_current_password(auth: AuthApp) -> None:
    """A stolen access token is not enough: a passkey signs in without the password and outlives it."""
    who = await member(auth)
    challenges = await auth.collection("auth_webauthn_challenges").count_documents({})
    for body in ({}, {"password": "not the password at all"}):
        answer = await auth.client.post(f"{API}/register/options", json=body, headers=who.bearer)
        assert_error(answer, 401, "invalid_credentials")
    assert await auth.collection("auth_webauthn_challenges").count_documents({}) == challenges
    fine = await auth.client.post(f"{API}/register/options", json=WITH_PASSWORD, headers=who.bearer)
    assert fine.status_code == 200, fine.text


async def test_the_owner_is_told_by_mail_when_a_passkey_is_added(
    app_factory: Callable[..., Any], smtp: SmtpServer, key: SoftAuthenticator
) -> None:
    env = portal_mail_env(smtp, ALLOW_UNVERIFIED_EMAIL_LOGIN="true")
    async with portal_app(app_factory, **env) as auth:
        who = await member(auth)
        assert (await register(auth, who, key)).status_code == 201
        notice = (await mail_to(smtp, who.address, "A passkey was added"))[0]
        part = next(p for p in notice.message.walk() if p.get_content_type() == "text/plain")
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes) and b"signs in without your password" in payload
