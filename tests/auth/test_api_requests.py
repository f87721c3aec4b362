"""Request hygiene through the API: bodies, headers, a real socket, the client address."""

from __future__ import annotations

import json
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest

from harness import Server
from tests.auth.api_helpers import (
    OPERATORS,
    assert_error,
    email,
)
from tests.auth.conftest import CLIENT_IP, STRONG_PASSWORD, AuthApp, registration

# Bodies ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/auth/register", "/api/auth/login", "/api/auth/refresh", "/api/auth/logout"]
)
@pytest.mark.parametrize(
    "raw", [b"{", b"not json", b'{"email": NaN}', b'{"a": Infinity}', b"\xff\xfe", b'{"a": 1,}']
)
async def test_malformed_json(auth: AuthApp, path: str, raw: bytes) -> None:
    response = await auth.client.post(path, content=raw, headers={"content-type": "application/json"})
    assert_error(response, 400, "invalid_json")


@pytest.mark.parametrize("path", ["/api/auth/register", "/api/auth/login", "/api/auth/refresh"])
async def test_duplicate_keys(auth: AuthApp, path: str) -> None:
    raw = b'{"email": "a@example.com", "email": "b@example.com", "password": "x", "refresh_token": "y"}'
    response = await auth.client.post(path, content=raw, headers={"content-type": "application/json"})
    assert_error(response, 400, "invalid_json")


async def test_unknown_fields(auth: AuthApp) -> None:
    address = email()
    response = await auth.register(address, role="ADMIN")
    assert_error(response, 422, "invalid_input")
    response = await auth.register(address, emailVerified=True)
    assert_error(response, 422, "invalid_input")
    assert await auth.find_user(address) is None
    await auth.register(address)
    assert_error(await auth.login(address, role="ADMIN"), 422, "invalid_input")
    response = await auth.client.post("/api/auth/refresh", json={"refresh_token": "x", "user_id": "y"})
    assert_error(response, 422, "invalid_input")
    response = await auth.client.post("/api/auth/logout", json={"everything": True})
    assert_error(response, 422, "invalid_input")


@pytest.mark.parametrize("payload", OPERATORS, ids=[json.dumps(p) for p in OPERATORS])
async def test_operator_payloads_are_422(auth: AuthApp, payload: Any) -> None:
    address = email()
    await auth.register(address)
    for field in ("email", "password"):
        body = {"email": address, "password": STRONG_PASSWORD, field: payload}
        assert_error(await auth.client.post("/api/auth/login", json=body), 422, "invalid_input")
    for field in ("email", "password", "name", "username", "confirm_password"):
        body = {
            "name": "N",
            "email": email(),
            "password": STRONG_PASSWORD,
            "confirm_password": STRONG_PASSWORD,
            field: payload,
        }
        if field == "username" and payload is None:
            continue  # the optional username may be null
        assert_error(await auth.client.post("/api/auth/register", json=body), 422, "invalid_input")
    response = await auth.client.post("/api/auth/refresh", json={"refresh_token": payload})
    if payload is None:
        assert_error(response, 401, "invalid_refresh_token")  # null is "no token"
    else:
        assert_error(response, 422, "invalid_input")
    if not isinstance(payload, bool):
        body = {"email": address, "password": STRONG_PASSWORD, "refresh_token_in_body": payload}
        assert_error(await auth.client.post("/api/auth/login", json=body), 422, "invalid_input")
    assert await auth.collection("auth_sessions").count_documents({}) == 0
    assert await auth.collection("users").count_documents({}) == 1


@pytest.mark.parametrize("raw", [b"[]", b'["email"]', b"42", b'"a string"', b"null", b"true"])
async def test_non_object_bodies_are_422(auth: AuthApp, raw: bytes) -> None:
    for path in ("/api/auth/register", "/api/auth/login"):
        response = await auth.client.post(path, content=raw, headers={"content-type": "application/json"})
        assert_error(response, 422, "invalid_input")


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 30_000,
        b'{"a":' * 3000 + b"1" + b"}" * 3000,
        b'{"email": ' + b"1" * 5000 + b"}",
        b'{"email": "\\ud800", "password": "x"}',
    ],
)
async def test_hostile_json_is_a_clean_400(auth: AuthApp, raw: bytes) -> None:
    response = await auth.client.post(
        "/api/auth/login", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code in (400, 401, 422)
    assert response.json()["code"] in ("invalid_json", "invalid_input", "invalid_credentials")


async def test_body_size_limit_is_64_kib(auth: AuthApp) -> None:
    def body(size: int) -> bytes:
        prefix = b'{"email": "a@example.com", "password": "'
        return prefix + b"x" * (size - len(prefix) - 2) + b'"}'

    headers = {"content-type": "application/json"}
    response = await auth.client.post("/api/auth/login", content=body(64 * 1024 + 1), headers=headers)
    assert_error(response, 413, "payload_too_large")
    response = await auth.client.post("/api/auth/login", content=body(64 * 1024), headers=headers)
    assert_error(response, 422, "invalid_input")  # read and validated: the password field is too long


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml"],
)
async def test_wrong_content_type(auth: AuthApp, content_type: str) -> None:
    address = email()
    raw = json.dumps({"email": address, "password": STRONG_PASSWORD}).encode()
    for path in ("/api/auth/login", "/api/auth/register"):
        response = await auth.client.post(path, content=raw, headers={"content-type": content_type})
        assert_error(response, 415, "unsupported_media_type")


async def test_json_with_charset_is_accepted(auth: AuthApp) -> None:
    address = email()
    await auth.register(address)
    raw = json.dumps({"email": address, "password": STRONG_PASSWORD}).encode()
    response = await auth.client.post(
        "/api/auth/login", content=raw, headers={"content-type": "application/json; charset=utf-8"}
    )
    assert response.status_code == 200


# Headers -------------------------------------------------------------------------------


async def test_request_id_is_echoed(auth: AuthApp) -> None:
    for path in ("/healthz", "/api/user", "/api/config", "/nowhere"):
        response = await auth.client.get(path, headers={"X-Request-Id": "req-123_abc.9:z"})
        assert response.headers["x-request-id"] == "req-123_abc.9:z"
    response = await auth.client.post("/api/auth/login", json={"email": 1}, headers={"X-Request-Id": "r-422"})
    assert response.headers["x-request-id"] == "r-422"
    # Without one (or with an unsafe one) the service mints its own.
    minted = (await auth.client.get("/healthz")).headers["x-request-id"]
    assert minted
    for bad in ("has spaces", "x" * 129, "line\tbreak", "<script>"):
        response = await auth.client.get("/healthz", headers={"X-Request-Id": bad})
        assert response.headers["x-request-id"] != bad
        assert response.headers["x-request-id"]
    assert len(response.headers.get_list("x-request-id")) == 1


async def test_request_id_reaches_the_audit_record(auth: AuthApp) -> None:
    address = email()
    await auth.register(address)
    await auth.client.post(
        "/api/auth/login",
        json={"email": address, "password": STRONG_PASSWORD},
        headers={"X-Request-Id": "trace-42"},
    )
    record = await auth.collection("auth_audit").find_one({"event": "login"})
    assert record is not None
    assert record["request_id"] == "trace-42"


async def test_unknown_route_and_method_are_json_errors(auth: AuthApp) -> None:
    assert_error(await auth.client.get("/api/nothing"), 404, "not_found")
    assert_error(await auth.client.get("/api/auth/login"), 405, "method_not_allowed")
    assert_error(await auth.client.put("/api/user"), 405, "method_not_allowed")


async def test_cors_only_for_the_configured_origin(app_factory: Callable[..., Any]) -> None:
    async with app_factory(DOMAIN_CLIENT="https://chat.example") as auth:
        preflight = {"Origin": "https://chat.example", "Access-Control-Request-Method": "POST"}
        response = await auth.client.options("/api/auth/refresh", headers=preflight)
        assert response.headers["access-control-allow-origin"] == "https://chat.example"
        assert response.headers["access-control-allow-credentials"] == "true"
        response = await auth.client.options(
            "/api/auth/refresh", headers={**preflight, "Origin": "https://chat.example.evil.test"}
        )
        assert response.headers.get("access-control-allow-origin") != "https://chat.example.evil.test"
        response = await auth.client.get("/api/config", headers={"Origin": "https://evil.test"})
        assert "access-control-allow-origin" not in response.headers


# Over a real socket ------------------------------------------------------------------------


async def test_full_flow_over_uvicorn(auth_service: Callable[..., Server]) -> None:
    """The same API through `python -m services.auth`: headers, cookies, and oversized headers."""
    server = auth_service()
    address = email()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        assert (await client.post("/api/auth/register", json=registration(address))).status_code == 200
        response = await client.post("/api/auth/login", json={"email": address, "password": STRONG_PASSWORD})
        assert response.status_code == 200, response.text
        assert "server" not in response.headers
        raw: SimpleCookie = SimpleCookie()
        for header in response.headers.get_list("set-cookie"):
            raw.load(header)
        morsel = raw["refreshToken"]
        assert morsel["httponly"] is True
        assert morsel["secure"] is True
        assert morsel["path"] == "/api/auth"
        assert morsel["samesite"].lower() == "strict"
        token = response.json()["token"]
        assert (
            await client.get("/api/user", headers={"Authorization": f"Bearer {token}"})
        ).status_code == 200
        # A 100 KiB bearer token never reaches a handler as a success (h11 limits the header block).
        huge = "a" * (100 * 1024)
        response = await client.get("/api/user", headers={"Authorization": f"Bearer {huge}"})
        assert response.status_code in (400, 401, 413, 431)
        assert (await client.get("/healthz")).status_code == 200
        refresh_token = morsel.value
        response = await client.post("/api/auth/refresh", headers={"Cookie": f"refreshToken={refresh_token}"})
        assert response.status_code == 200
    # Nothing secret reached the service's log.
    log = server.log()
    assert "login" in log
    for secret in (STRONG_PASSWORD, token, refresh_token, "$argon2"):
        assert secret not in log


# Client IP -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "forwarded", "expected"),
    [
        # Nobody trusted: X-Forwarded-For is ignored, the socket peer is the client.
        ({}, "198.51.100.7", CLIENT_IP),
        # Behind one trusted proxy: the right-most entry it appended, never the spoofable left-most.
        ({"TRUST_PROXY": "1", "TRUSTED_PROXIES": f"{CLIENT_IP}/32"}, "198.51.100.7", "198.51.100.7"),
        ({"TRUST_PROXY": "1", "TRUSTED_PROXIES": f"{CLIENT_IP}/32"}, "6.6.6.6, 198.51.100.7", "198.51.100.7"),
        # Two hops: the inner trusted proxy is skipped.
        (
            {"TRUST_PROXY": "2", "TRUSTED_PROXIES": f"{CLIENT_IP}/32, 10.0.0.0/8"},
            "6.6.6.6, 198.51.100.7, 10.1.2.3",
            "198.51.100.7",
        ),
        # A trusted address only counts up to TRUST_PROXY hops.
        (
            {"TRUST_PROXY": "1", "TRUSTED_PROXIES": f"{CLIENT_IP}/32, 10.0.0.0/8"},
            "198.51.100.7, 10.1.2.3",
            "10.1.2.3",
        ),
        # The peer is not a trusted proxy: its header means nothing.
        ({"TRUST_PROXY": "1", "TRUSTED_PROXIES": "10.0.0.0/8"}, "198.51.100.7", CLIENT_IP),
        # Garbage in the header never becomes the client address, nor does the (exempt) proxy.
        ({"TRUST_PROXY": "1", "TRUSTED_PROXIES": f"{CLIENT_IP}/32"}, "not-an-ip", "unknown"),
        # A scoped address loses its zone.
        ({"TRUST_PROXY": "1", "TRUSTED_PROXIES": f"{CLIENT_IP}/32"}, "fe80::1%eth0", "fe80::1"),
    ],
)
async def test_client_ip_recorded_on_the_session(
    app_factory: Callable[..., Any], env: dict[str, str], forwarded: str, expected: str
) -> None:
    async with app_factory(**env) as auth:
        address = email()
        await auth.register(address)
        response = await auth.client.post(
            "/api/auth/login",
            json={"email": address, "password": STRONG_PASSWORD},
            headers={"X-Forwarded-For": forwarded},
        )
        assert response.status_code == 200
        sessions = (await auth.get("/api/auth/sessions", response.json()["token"])).json()
        assert [s["ip"] for s in sessions] == [expected]
        record = await auth.collection("auth_audit").find_one({"event": "login"})
        assert record is not None
        assert record["ip"] == expected


@pytest.mark.parametrize("name", ["Al\x00ice", "line\nbreak", "tab\there", "del\x7f"])
async def test_register_refuses_control_characters_in_name(auth: AuthApp, name: str) -> None:
    response = await auth.register(email(), name=name)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_input"
