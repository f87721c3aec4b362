"""A login flood from one address: limited (429), scored, banned (403), then shut out of every route.

Runs over both stores: moderation on its in-memory store and on a private Redis.
"""

from __future__ import annotations

import secrets

import pytest

from tests.e2e.conftest import Stack, assert_banned, assert_limited, fresh_email
from tests.integration.support import STRONG_PASSWORD

pytestmark = pytest.mark.parametrize("moderation", ["memory", "redis"], indirect=True, scope="module")

LOGIN_MAX = 3
WRONG = "not the password at all, sorry"
# Routes a banned address may still reach: probes, public documents and the way out.
EXEMPT_GETS = ("/healthz", "/readyz", "/openapi.json", "/.well-known/jwks.json")


async def test_login_flood_is_limited_then_banned_everywhere_but_exempt_routes(stack: Stack) -> None:
    owner_email = fresh_email("owner")
    owner = await stack.user(owner_email)  # from its own address
    second = await stack.login(stack.fresh_ip(), owner_email)  # a session to log out of later
    assert second.status_code == 200, second.text
    attacker = stack.fresh_ip()

    # Up to LOGIN_MAX attempts per window answer as usual.
    for _ in range(LOGIN_MAX):
        response = await stack.login(attacker, fresh_email("nobody"), WRONG)
        assert response.status_code == 401, response.text
        assert response.json()["code"] == "invalid_credentials"
    assert await stack.score(attacker) == 0

    # Beyond it: 429 with the rate-limit headers; each refusal is a violation scored on the address.
    for expected_score in (1, 2):
        assert_limited(await stack.login(attacker, fresh_email("nobody"), WRONG), LOGIN_MAX)
        assert await stack.score(attacker) == expected_score
    assert (await stack.check(ip=attacker))["banned"] is False

    # The violation that reaches BAN_INTERVAL (3) bans, and the request that crossed the line gets it.
    body = assert_banned(await stack.login(attacker, fresh_email("nobody"), WRONG))
    assert "violation score" in body["reason"]
    check = await stack.check(ip=attacker)
    assert check["banned"] is True and check["subject"] == f"ip:{attacker}"
    assert check["expires_at"] == body["expires_at"]
    (record,) = [r for r in await stack.audit(f"ip:{attacker}") if r["action"] == "ban"]
    assert record["automatic"] is True and record["violation"] == "login"

    # Now every route answers 403 `banned` from that address, whatever the credentials.
    token, refresh_token = owner["token"], owner["refresh_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    client = stack.client(attacker)
    refused = {
        "login (correct password)": await client.post(
            "/api/auth/login", json={"email": owner_email, "password": STRONG_PASSWORD}
        ),
        "register": await client.post(
            "/api/auth/register",
            json={
                "name": "N",
                "email": fresh_email(),
                "password": STRONG_PASSWORD,
                "confirm_password": STRONG_PASSWORD,
            },
        ),
        "refresh": await client.post("/api/auth/refresh", json={"refresh_token": refresh_token}),
        "user": await client.get("/api/user", headers=bearer),
        "config": await client.get("/api/config"),
        "sessions": await client.get("/api/auth/sessions", headers=bearer),
        "delete sessions": await client.delete("/api/auth/sessions", headers=bearer),
        "delete one session": await client.delete("/api/auth/sessions/abc", headers=bearer),
        "introspect": await client.post("/api/auth/introspect", data={"token": token}),
        "verify": await client.get("/verify", headers=bearer),
        "unknown route": await client.get("/nowhere"),
    }
    for name, response in refused.items():
        assert response.status_code == 403, (name, response.status_code, response.text)
        banned = assert_banned(response)
        assert banned["expires_at"] == body["expires_at"], name

    # ...except the probes, the public documents and logout.
    for path in EXEMPT_GETS:
        response = await client.get(path)
        assert response.status_code == 200, (path, response.text)
    logout = await client.post(
        "/api/auth/logout", headers={"Authorization": f"Bearer {second.json()['token']}"}
    )
    assert logout.status_code == 200, logout.text

    # Other addresses are unaffected: the refused refresh above consumed nothing.
    elsewhere = stack.fresh_ip()
    other = stack.client(elsewhere)
    assert (await other.get("/api/user", headers=bearer)).status_code == 200
    assert (await other.get("/verify", headers=bearer)).status_code == 200
    refreshed = await other.post("/api/auth/refresh", json={"refresh_token": refresh_token})
    assert refreshed.status_code == 200, refreshed.text
    assert (await stack.login(stack.fresh_ip(), owner_email)).status_code == 200
    assert (await stack.check(ip=elsewhere))["banned"] is False


async def test_ipv6_flood_counts_and_bans_the_whole_64(stack: Stack) -> None:
    """IPv6 clients count per /64: rotating addresses inside one prefix gains nothing."""
    group, subnet = secrets.randbelow(0xFFFF), secrets.randbelow(0xFFFE)
    prefix = f"2001:db8:{group:x}:{subnet:x}"
    addresses = iter(f"{prefix}::{n:x}" for n in range(1, 100))
    for _ in range(LOGIN_MAX):
        response = await stack.login(next(addresses), fresh_email("nobody"), WRONG)
        assert response.status_code == 401, response.text
    for _ in range(2):
        assert_limited(await stack.login(next(addresses), fresh_email("nobody"), WRONG), LOGIN_MAX)
    banned = assert_banned(await stack.login(next(addresses), fresh_email("nobody"), WRONG))
    check = await stack.check(ip=f"{prefix}::abcd")
    assert check["banned"] is True and check["subject"] == f"net:{prefix}::/64"
    # Any address of the prefix is now refused by auth itself, on any route.
    response = await stack.client(f"{prefix}:1:2:3:4").get("/api/config")
    assert assert_banned(response)["expires_at"] == banned["expires_at"]
    # The neighbouring /64 is untouched.
    neighbour = f"2001:db8:{group:x}:{subnet + 1:x}::1"
    assert (await stack.client(neighbour).get("/api/config")).status_code == 200
