"""Token and session items with no test elsewhere: 24 (RFC 7515 A.1 known answer),
31 (every cookie's attributes, no-store), 41 (a fresh family per login)."""

from __future__ import annotations

import base64
import secrets

import jwt
import pytest

from services.auth.devices import DEVICE_COOKIE
from tests.auth.conftest import STRONG_PASSWORD, AuthApp

# RFC 7515 Appendix A.1: an HS256 JWS whose `exp` is in March 2011.
RFC7515_A1_TOKEN = (
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
)
RFC7515_A1_KEY = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"


def email() -> str:
    return f"sec-{secrets.token_hex(4)}@example.com"


# Item 24 -------------------------------------------------------------------------------------------


async def test_rfc7515_a1_known_answer_and_expiry(auth: AuthApp) -> None:
    key = base64.urlsafe_b64decode(RFC7515_A1_KEY + "==")
    claims = jwt.decode(RFC7515_A1_TOKEN, key, algorithms=["HS256"], options={"verify_exp": False})
    assert claims == {"iss": "joe", "exp": 1300819380, "http://example.com/is_root": True}
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(RFC7515_A1_TOKEN, key, algorithms=["HS256"])
    response = await auth.get("/api/user", RFC7515_A1_TOKEN)
    assert response.status_code == 401


# Item 31 -------------------------------------------------------------------------------------------


def cookie_attributes(header: str) -> tuple[str, dict[str, str]]:
    parts = [p.strip() for p in header.split(";")]
    name = parts[0].split("=", 1)[0]
    attributes: dict[str, str] = {}
    for part in parts[1:]:
        key, _, value = part.partition("=")
        attributes[key.lower()] = value
    return name, attributes


def assert_strict_cookies(headers: list[str], expected: set[str]) -> None:
    names = set()
    for header in headers:
        name, attributes = cookie_attributes(header)
        value = header.split(";", 1)[0].split("=", 1)[1]
        names.add(name)
        assert "httponly" in attributes, header
        assert "secure" in attributes, header
        assert attributes.get("samesite", "").lower() == "strict", header
        assert "domain" not in attributes, header  # host-only, as __Host- would force
        if attributes.get("path") == "/":
            # Site-wide only what LibreChat's client reads (a constant, no secret), or a deletion of
            # LibreChat's leftover refresh cookie.
            deleted = attributes.get("max-age") == "0" and value in ("", '""')
            assert (name == "token_provider" and value == "librechat") or deleted, header
        else:
            assert attributes.get("path") == "/api/auth", header  # secrets never go to the rest of the site
    assert names == expected


async def test_every_cookie_is_secure_httponly_strict_and_host_only(auth: AuthApp) -> None:
    address = email()
    await auth.register(address)
    login = await auth.login(address)
    assert login.status_code == 200
    assert login.headers["cache-control"] == "no-store"
    assert_strict_cookies(
        login.headers.get_list("set-cookie"), {"refreshToken", "token_provider", DEVICE_COOKIE}
    )
    refresh_token = login.cookies["refreshToken"]
    auth.client.cookies.clear()
    refreshed = await auth.client.post(
        "/api/auth/refresh", headers={"Cookie": f"refreshToken={refresh_token}"}
    )
    assert refreshed.status_code == 200
    assert refreshed.headers["cache-control"] == "no-store"
    assert_strict_cookies(refreshed.headers.get_list("set-cookie"), {"refreshToken", "token_provider"})
    child = refreshed.cookies["refreshToken"]
    logout = await auth.client.post("/api/auth/logout", headers={"Cookie": f"refreshToken={child}"})
    assert logout.status_code == 200
    assert_strict_cookies(logout.headers.get_list("set-cookie"), {"refreshToken", "token_provider"})
    # Service clients (refresh token in the body) get no cookie at all, and no caching either.
    body_login = await auth.login(address, refresh_token_in_body=True)
    assert body_login.headers["cache-control"] == "no-store"
    assert body_login.headers.get_list("set-cookie") == []


# Item 41 -------------------------------------------------------------------------------------------


def session_id(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["sid"])


async def test_each_login_starts_a_fresh_family_whatever_the_client_sends(auth: AuthApp) -> None:
    address = email()
    first = await auth.user(address)
    old_refresh = first["refresh_token"]
    # A second login that presents the first session's refresh token (cookie) and access token.
    auth.client.cookies.clear()
    second = await auth.client.post(
        "/api/auth/login",
        json={"email": address, "password": STRONG_PASSWORD, "refresh_token_in_body": True},
        headers={"Cookie": f"refreshToken={old_refresh}", "Authorization": f"Bearer {first['token']}"},
    )
    assert second.status_code == 200
    body = second.json()
    assert session_id(body["token"]) != session_id(first["token"])
    assert body["refresh_token"] != old_refresh
    # A session id supplied in the body is not even accepted.
    smuggled = await auth.login(address, session_id=session_id(first["token"]))
    assert smuggled.status_code == 422
    # The presented token was neither adopted nor consumed: both families live on, separately.
    assert await auth.collection("auth_sessions").count_documents({"revoked_at": None}) == 2
    rotated = await auth.refresh(old_refresh)
    assert rotated.status_code == 200
    assert session_id(rotated.json()["token"]) == session_id(first["token"])
