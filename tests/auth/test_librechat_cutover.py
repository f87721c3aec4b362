"""Cut-over from LibreChat without logouts: a browser still holding LibreChat's `refreshToken` at
`Path=/` also gets authgate's at `Path=/api/auth`, sends both, and stays signed in.

The cookies are sent as a browser sends them (the longer path first, in one Cookie header), so
the test does not depend on a client's cookie jar.
"""

from __future__ import annotations

import httpx
import jwt
import pytest

from tests.auth.api_helpers import email
from tests.auth.conftest import AuthApp

# What LibreChat's refresh cookie holds: a JWT {id, sessionId} signed with its refresh secret.
LIBRECHAT_REFRESH = jwt.encode({"id": "65f0c0ffee", "sessionId": "abc"}, "librechat-refresh-secret" * 2)


def set_cookies(response: httpx.Response) -> list[str]:
    return list(response.headers.get_list("set-cookie"))


def cleared(headers: list[str], name: str, path: str) -> bool:
    return any(
        h.startswith(f"{name}=")
        and f"Path={path}" in h
        and ("Max-Age=0" in h or "expires=Thu, 01 Jan 1970" in h)
        for h in headers
    )


def refresh_value(headers: list[str]) -> str:
    found = [
        h.split(";")[0].split("=", 1)[1]
        for h in headers
        if h.startswith("refreshToken=") and "Path=/api/auth" in h
    ]
    assert len(found) == 1, headers
    return found[0]


async def browser_login(auth: AuthApp) -> tuple[str, list[str]]:
    address = email()
    assert (await auth.register(address)).status_code == 200
    auth.client.cookies.clear()
    response = await auth.login(address)
    assert response.status_code == 200, response.text
    auth.client.cookies.clear()  # the test sends its cookies by hand, as the browser orders them
    return refresh_value(set_cookies(response)), set_cookies(response)


async def refresh_with(auth: AuthApp, cookie_header: str) -> httpx.Response:
    return await auth.client.post("/api/auth/refresh", headers={"Cookie": cookie_header})


async def test_login_sets_librechat_token_provider_cookie(auth: AuthApp) -> None:
    _, headers = await browser_login(auth)
    provider = [h for h in headers if h.startswith("token_provider=")]
    assert len(provider) == 1, headers
    assert provider[0].startswith("token_provider=librechat;")
    assert "Path=/" in provider[0] and "HttpOnly" in provider[0] and "SameSite=strict" in provider[0]


@pytest.mark.parametrize("order", ["authgate first", "librechat first"])
async def test_both_refresh_cookies_stay_signed_in_across_refreshes(auth: AuthApp, order: str) -> None:
    token, _ = await browser_login(auth)
    for _ in range(3):
        pair = [f"refreshToken={token}", f"refreshToken={LIBRECHAT_REFRESH}"]
        if order == "librechat first":
            pair.reverse()
        response = await refresh_with(auth, "; ".join([*pair, "token_provider=librechat"]))
        assert response.status_code == 200, response.text
        # LibreChat's dead cookie at `/` is cleared, so the browser stops sending it.
        assert cleared(set_cookies(response), "refreshToken", "/"), set_cookies(response)
        token = refresh_value(set_cookies(response))


async def test_logout_clears_the_refresh_cookie_on_both_paths(auth: AuthApp) -> None:
    token, _ = await browser_login(auth)
    cookie = f"refreshToken={token}; refreshToken={LIBRECHAT_REFRESH}; token_provider=librechat"
    response = await auth.client.post("/api/auth/logout", headers={"Cookie": cookie})
    assert response.status_code == 200, response.text
    headers = set_cookies(response)
    assert cleared(headers, "refreshToken", "/api/auth"), headers
    assert cleared(headers, "refreshToken", "/"), headers
    assert cleared(headers, "token_provider", "/"), headers
    assert (await refresh_with(auth, f"refreshToken={token}")).status_code == 401


async def test_a_refused_refresh_clears_both_paths(auth: AuthApp) -> None:
    response = await refresh_with(auth, f"refreshToken={LIBRECHAT_REFRESH}; refreshToken=unknown.token")
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_refresh_token"
    headers = set_cookies(response)
    assert cleared(headers, "refreshToken", "/api/auth"), headers
    assert cleared(headers, "refreshToken", "/"), headers


async def test_a_replayed_cookie_beside_a_live_one_still_revokes_its_family(auth: AuthApp) -> None:
    """Trying every cookie keeps reuse detection: a replayed parent ends its session."""
    first, _ = await browser_login(auth)
    rotated = refresh_value(set_cookies(await refresh_with(auth, f"refreshToken={first}")))
    child = refresh_value(set_cookies(await refresh_with(auth, f"refreshToken={rotated}")))
    auth.ctx.sessions.policy = type(auth.ctx.sessions.policy)(
        **{**auth.ctx.sessions.policy.__dict__, "grace_ms": 0}
    )
    response = await refresh_with(auth, f"refreshToken={first}; refreshToken={LIBRECHAT_REFRESH}")
    assert response.status_code == 401
    assert (await refresh_with(auth, f"refreshToken={child}")).status_code == 401


async def test_at_most_four_cookies_are_tried(auth: AuthApp) -> None:
    token, _ = await browser_login(auth)
    decoys = "; ".join(f"refreshToken=decoy{n}.x" for n in range(4))
    assert (await refresh_with(auth, f"{decoys}; refreshToken={token}")).status_code == 401
    assert (await refresh_with(auth, f"refreshToken={token}; {decoys}")).status_code == 200
