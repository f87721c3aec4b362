"""Moderation stopped mid-test, then restarted on the same port (its state on a private Redis).

While it is down: login fails open (the in-process limiter still throttles after
LOGIN_MAX), register fails closed (503 `moderation_unavailable`), failed-login
reports wait in the buffer, and the last-known bans still apply. After the
restart everything is normal again, and the Redis-held bans are still there.
"""

from __future__ import annotations

import httpx
import pytest

from harness import eventually, restart_moderation
from tests.e2e.conftest import (
    BAN_DEADLINE_S,
    Stack,
    assert_banned,
    assert_limited,
    fresh_email,
    identical_failure,
)
from tests.integration.support import STRONG_PASSWORD

pytestmark = pytest.mark.parametrize("moderation", ["redis"], indirect=True, scope="module")

LOGIN_MAX = 3
WRONG = "not the password at all, sorry"
RECOVERY_S = 20.0  # the circuit breaker lets a probe through 5 s after it opened


async def test_outage_fails_open_for_login_closed_for_register_and_keeps_known_bans(stack: Stack) -> None:
    email, banned_email = fresh_email("owner"), fresh_email("banned")
    owner = await stack.user(email)
    banned_user = await stack.user(banned_email)
    banned_ip = stack.fresh_ip()
    await stack.ban(f"ip:{banned_ip}", reason="abuse", seconds=600)
    await stack.ban(f"user:{banned_user['user_id']}", reason="spam", seconds=600)
    client = stack.ctx.protection.client

    async def both_cached() -> bool:
        return (
            client.is_banned(ip=banned_ip) is not None
            and client.is_banned(user_id=banned_user["user_id"]) is not None
        )

    await eventually(both_cached, "both bans in auth's cache", timeout=BAN_DEADLINE_S)

    stack.moderation.server.stop()
    try:
        # Login fails open: credentials are checked as usual...
        home = stack.fresh_ip()
        for _ in range(LOGIN_MAX):
            response = await stack.login(home, email)
            assert response.status_code == 200, response.text
        assert client.stats.degraded_answers >= LOGIN_MAX
        # ...and the in-process limiter still throttles after LOGIN_MAX from one address.
        assert_limited(await stack.login(home, email), LOGIN_MAX)
        # A failure is answered as usual; its report waits in the buffer for moderation.
        failed = await stack.login(stack.fresh_ip(), email, WRONG)
        assert failed.status_code == 401 and failed.json()["code"] == "invalid_credentials"
        assert client.stats.buffered >= 1

        # Register fails closed.
        response = await stack.register(stack.fresh_ip(), fresh_email("new"))
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "moderation_unavailable"
        assert int(response.headers["Retry-After"]) >= 1
        assert await stack.collection("users").count_documents({}) == 2

        # Last-known bans still apply: the address on every route, the user after a correct password.
        banned_client = stack.client(banned_ip)
        assert_banned(await banned_client.get("/api/config"), max_seconds=600)
        assert_banned(
            await banned_client.post("/api/auth/login", json={"email": email, "password": STRONG_PASSWORD}),
            max_seconds=600,
        )
        assert_banned(await stack.login(stack.fresh_ip(), banned_email), max_seconds=600)
        identical_failure(
            await stack.login(stack.fresh_ip(), banned_email, WRONG),
            await stack.login(stack.fresh_ip(), fresh_email("unknown"), WRONG),
        )
        refresh = await stack.client(stack.fresh_ip()).post(
            "/api/auth/refresh", json={"refresh_token": banned_user["refresh_token"]}
        )
        assert_banned(refresh, max_seconds=600)
        # /verify answers from its caches: the banned user refused, others admitted.
        proxy = stack.client(stack.fresh_ip())
        for token, status in ((banned_user["token"], 403), (owner["token"], 200)):
            response = await proxy.get("/verify", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == status, response.text
        # Readiness does not depend on moderation: draining every replica would not help.
        assert (await proxy.get("/readyz")).status_code == 200
    finally:
        restart_moderation(stack.moderation)

    # Back to normal once the breaker lets a call through: registration works again...
    async def registers() -> httpx.Response | None:
        response = await stack.register(stack.fresh_ip(), fresh_email("after"))
        return response if response.status_code == 200 else None

    await eventually(registers, "registration after moderation's restart", timeout=RECOVERY_S)
    # ...checks are answered by moderation, not the local limiter...
    degraded = client.stats.degraded_answers
    response = await stack.login(stack.fresh_ip(), email)
    assert response.status_code == 200, response.text
    assert client.stats.degraded_answers == degraded
    # ...the buffered failure report was delivered, and the bans (kept in Redis) still hold.
    await eventually(lambda: _drained(stack), "the report buffer drained", timeout=RECOVERY_S)
    assert (await stack.check(ip=banned_ip))["banned"] is True
    assert_banned(await stack.client(banned_ip).get("/api/config"), max_seconds=600)
    assert_banned(await stack.login(stack.fresh_ip(), banned_email), max_seconds=600)


async def _drained(stack: Stack) -> bool:
    stats = stack.ctx.protection.client.stats
    return stats.buffered == 0 and stats.delivered >= 1
