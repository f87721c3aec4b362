"""User bans through moderation's admin API: refresh, login and /verify.

A user ban revokes the user's sessions (refresh fails with 403 `banned`, the access
token stops working), never changes the answer to a wrong password, and is
revealed only after a correct one. /verify refuses a banned user or a banned
client address (resolved through a trusted proxy's X-Forwarded-For) with 403
`banned`; unbanning restores everything.
"""

from __future__ import annotations

import httpx

from harness import eventually
from tests.e2e.conftest import (
    BAN_DEADLINE_S,
    Stack,
    assert_banned,
    fresh_email,
    identical_failure,
)
from tests.integration.support import STRONG_PASSWORD

WRONG = "not the password at all, sorry"


async def test_banned_users_refresh_fails_and_sessions_are_revoked_until_unban(stack: Stack) -> None:
    email = fresh_email("banned")
    owner = await stack.user(email)
    user_id = owner["user_id"]
    bystander = await stack.user(fresh_email("bystander"))
    client = stack.client(stack.fresh_ip())
    bearer = {"Authorization": f"Bearer {owner['token']}"}
    assert (await client.get("/api/user", headers=bearer)).status_code == 200

    ban = await stack.ban(f"user:{user_id}", reason="spam", seconds=600)

    # The feed brings the ban to auth, which revokes every session of the user at once.
    async def token_refused() -> bool:
        return (await client.get("/api/user", headers=bearer)).status_code == 401

    await eventually(
        token_refused, "the banned user's access token refused on /api/user", timeout=BAN_DEADLINE_S
    )
    revoked = await stack.collection("auth_revocations").count_documents(
        {"user_id": user_id, "reason": "user_banned"}
    )
    assert revoked >= 1
    live = await stack.collection("auth_sessions").count_documents({"user_id": user_id, "revoked_at": None})
    assert live == 0

    # Refresh: 403 `banned` with the ban's expiry (never a silent 401).
    response = await client.post("/api/auth/refresh", json={"refresh_token": owner["refresh_token"]})
    body = assert_banned(response, max_seconds=600)
    assert body["expires_at"] == ban["expires_at"] and body["reason"] == "spam"
    # The correct password reveals the ban; nothing is issued.
    response = await stack.login(stack.fresh_ip(), email)
    assert_banned(response, max_seconds=600)
    assert "set-cookie" not in response.headers
    # Nobody else is touched.
    other = {"Authorization": f"Bearer {bystander['token']}"}
    assert (await client.get("/api/user", headers=other)).status_code == 200
    refreshed = await client.post("/api/auth/refresh", json={"refresh_token": bystander["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text

    # Unban: a fresh login works again (once the feed has carried the unban).
    await stack.unban(f"user:{user_id}")

    async def login_works() -> httpx.Response | None:
        response = await stack.login(stack.fresh_ip(), email)
        return response if response.status_code == 200 else None

    fresh = await eventually(login_works, "a fresh login after the unban", timeout=BAN_DEADLINE_S)
    again = {"Authorization": f"Bearer {fresh.json()['token']}"}
    assert (await client.get("/api/user", headers=again)).status_code == 200
    refreshed = await client.post("/api/auth/refresh", json={"refresh_token": fresh.json()["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text


async def test_a_ban_never_changes_the_answer_to_a_wrong_password(stack: Stack) -> None:
    banned_email, plain_email = fresh_email("banned"), fresh_email("plain")
    banned = await stack.user(banned_email)
    await stack.user(plain_email)
    await stack.ban(f"user:{banned['user_id']}", reason="abuse")
    await eventually(
        lambda: _is_cached(stack, banned["user_id"]), "the ban in auth's cache", timeout=BAN_DEADLINE_S
    )

    # Each attempt from its own address: no per-IP limit interferes.
    unknown = await stack.login(stack.fresh_ip(), fresh_email("unknown"), WRONG)
    wrong = await stack.login(stack.fresh_ip(), plain_email, WRONG)
    banned_wrong = await stack.login(stack.fresh_ip(), banned_email, WRONG)
    assert unknown.status_code == 401 and unknown.json()["code"] == "invalid_credentials"
    identical_failure(unknown, wrong)
    identical_failure(unknown, banned_wrong)
    assert "set-cookie" not in banned_wrong.headers
    # Browser-style logins (no refresh_token_in_body) answer alike too.
    browser_unknown = await stack.client(stack.fresh_ip()).post(
        "/api/auth/login", json={"email": fresh_email("unknown"), "password": WRONG}
    )
    browser_banned = await stack.client(stack.fresh_ip()).post(
        "/api/auth/login", json={"email": banned_email, "password": WRONG}
    )
    identical_failure(browser_unknown, browser_banned)

    # Only the correct password is told about the ban.
    assert_banned(await stack.login(stack.fresh_ip(), banned_email, STRONG_PASSWORD))


async def _is_cached(stack: Stack, user_id: str) -> bool:
    return stack.ctx.protection.user_ban(user_id) is not None


async def test_verify_refuses_banned_users_and_banned_addresses_until_unban(stack: Stack) -> None:
    user = await stack.user(fresh_email("verify"))
    bystander = await stack.user(fresh_email("bystander"))
    home = stack.fresh_ip()
    client = stack.client(home)  # peer: the trusted proxy; X-Forwarded-For: home

    async def verify(token: str, via: httpx.AsyncClient = client) -> httpx.Response:
        return await via.get("/verify", headers={"Authorization": f"Bearer {token}"})

    assert (await verify(user["token"])).status_code == 200

    # A banned user: 403 `banned` with Retry-After within the bound, for as long as the ban lasts.
    await stack.ban(f"user:{user['user_id']}", reason="spam", seconds=300)

    async def refused() -> httpx.Response | None:
        response = await verify(user["token"])
        return response if response.status_code != 200 else None

    response = await eventually(refused, "/verify refusing the banned user", timeout=BAN_DEADLINE_S)
    assert_banned(response, max_seconds=300)
    await _settle_revocations(stack)
    assert_banned(await verify(user["token"]), max_seconds=300)  # still `banned` once sessions are revoked
    assert (await verify(bystander["token"])).status_code == 200

    # A banned client address, resolved through X-Forwarded-For from the trusted proxy.
    await stack.ban(f"ip:{home}", reason="abuse", seconds=120)

    async def address_refused() -> httpx.Response | None:
        response = await verify(bystander["token"])
        return response if response.status_code == 403 else None

    assert_banned(
        await eventually(address_refused, "/verify refusing the banned address", timeout=BAN_DEADLINE_S),
        max_seconds=120,
    )
    # The same token from another address passes: the address, not the user, is banned.
    assert (await verify(bystander["token"], stack.client(stack.fresh_ip()))).status_code == 200
    # A client cannot dodge the address ban by prepending another address of its own.
    spoof = await client.get(
        "/verify",
        headers={"Authorization": f"Bearer {bystander['token']}", "X-Forwarded-For": f"192.0.2.1, {home}"},
    )
    assert_banned(spoof, max_seconds=120)

    # Unban both: 200 again (the user needs a new session: the ban revoked the old ones).
    await stack.unban(f"ip:{home}")
    await stack.unban(f"user:{user['user_id']}")

    async def bystander_passes() -> bool:
        return (await verify(bystander["token"])).status_code == 200

    await eventually(bystander_passes, "/verify admitting the unbanned address", timeout=BAN_DEADLINE_S)

    async def fresh_token() -> str | None:
        response = await stack.login(stack.fresh_ip(), user["user"]["email"])
        return str(response.json()["token"]) if response.status_code == 200 else None

    token = await eventually(fresh_token, "a login after the unban", timeout=BAN_DEADLINE_S)
    assert (await verify(token)).status_code == 200


async def _settle_revocations(stack: Stack) -> None:
    """Wait until the ban's session revocation has reached /verify's revocation cache."""
    revocations = stack.collection("auth_revocations")

    async def landed() -> bool:
        found = await revocations.find_one({"reason": "user_banned", "sid": {"$ne": None}})
        return found is not None and stack.ctx.revocations.is_revoked(found["sid"])

    await eventually(landed, "the ban's revocation in /verify's cache", timeout=BAN_DEADLINE_S)
