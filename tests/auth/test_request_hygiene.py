"""Requests a browser page or a confused proxy can send: refused clearly, before any work is done."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from prometheus_client import REGISTRY

from tests.auth.api_helpers import assert_error, email
from tests.auth.conftest import STRONG_PASSWORD, AuthApp


def moderation_calls() -> float:
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "authgate_moderation_calls"
        for sample in metric.samples
        if sample.name == "authgate_moderation_calls_total"
    )


# JSON bodies need a JSON content type ----------------------------------------------------------


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_login_without_a_json_content_type_is_415_before_any_counting(
    auth: AuthApp, content_type: str | None
) -> None:
    """A cross-site no-cors fetch sends no Content-Type: it must not reach moderation or the audit."""
    address = email()
    await auth.register(address)
    headers = {} if content_type is None else {"Content-Type": content_type}
    body = json.dumps({"email": address, "password": "wrong password of some length"}).encode()
    before_calls = moderation_calls()
    before_audit = await auth.collection("auth_audit").count_documents({"event": "login_failed"})
    request = auth.client.build_request("POST", "/api/auth/login", content=body, headers=headers)
    if content_type is None:
        request.headers.pop("Content-Type", None)
    response = await auth.client.send(request)
    assert_error(response, 415, "unsupported_media_type")
    assert moderation_calls() == before_calls
    assert await auth.collection("auth_audit").count_documents({"event": "login_failed"}) == before_audit


async def test_register_without_a_json_content_type_is_415(auth: AuthApp) -> None:
    address = email()
    body = {"name": "N", "email": address, "password": STRONG_PASSWORD, "confirm_password": STRONG_PASSWORD}
    request = auth.client.build_request("POST", "/api/auth/register", content=json.dumps(body).encode())
    request.headers.pop("Content-Type", None)
    assert_error(await auth.client.send(request), 415, "unsupported_media_type")
    assert await auth.find_user(address) is None


@pytest.mark.parametrize("path", ["/api/auth/refresh", "/api/auth/logout"])
@pytest.mark.parametrize(
    ("content_type", "content"),
    [("text/plain", b""), ("application/x-www-form-urlencoded", b""), ("text/plain", b"{}"), (None, b"{}")],
)
async def test_cookie_endpoints_refuse_form_and_text_posts(
    auth: AuthApp, path: str, content_type: str | None, content: bytes
) -> None:
    await auth.register(address := email())
    assert (await auth.login(address)).status_code == 200  # the cookie is in the jar
    request = auth.client.build_request("POST", path, content=content)
    if content_type is None:
        request.headers.pop("Content-Type", None)
    else:
        request.headers["Content-Type"] = content_type
    assert_error(await auth.client.send(request), 415, "unsupported_media_type")


@pytest.mark.parametrize("path", ["/api/auth/refresh", "/api/auth/logout"])
async def test_an_empty_body_without_content_type_still_works(auth: AuthApp, path: str) -> None:
    """What a same-origin client sends when it has nothing to say: the cookie carries the session."""
    await auth.register(address := email())
    login = await auth.login(address)
    headers = {"Authorization": f"Bearer {login.json()['token']}"} if path.endswith("logout") else {}
    response = await auth.client.post(path, headers=headers)
    assert response.status_code == 200, response.text


# Foreign origins on cookie-authenticated routes -------------------------------------------------


@pytest.mark.parametrize("path", ["/api/auth/refresh", "/api/auth/logout"])
@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://auth.test.evil.example"])
async def test_foreign_origin_is_refused(auth: AuthApp, path: str, origin: str) -> None:
    await auth.register(address := email())
    assert (await auth.login(address)).status_code == 200
    response = await auth.client.post(path, json={}, headers={"Origin": origin})
    assert_error(response, 403, "origin_refused")
    # The session is untouched: the cookie still refreshes from our own origin.
    assert (await auth.client.post("/api/auth/refresh", json={})).status_code == 200


@pytest.mark.parametrize("origin", ["https://auth.test", "https://chat.example"])
async def test_own_and_client_origins_are_accepted(app_factory: Any, origin: str) -> None:
    async with app_factory(DOMAIN_CLIENT="https://chat.example") as auth:
        await auth.register(address := email())
        assert (await auth.login(address)).status_code == 200
        response = await auth.client.post("/api/auth/refresh", json={}, headers={"Origin": origin})
        assert response.status_code == 200, response.text


# /verify's query and headers ---------------------------------------------------------------------


@pytest.mark.parametrize("query", ["role=ADMIN", "Roles=", "roles[]=", "roles%20=", "roles=ADMIN&x=1", "x"])
async def test_verify_refuses_unknown_query_parameters(auth: AuthApp, query: str) -> None:
    body = await auth.user(email())
    response = await auth.client.get(f"/verify?{query}", headers={"Authorization": f"Bearer {body['token']}"})
    assert_error(response, 400, "bad_request")


async def test_verify_refuses_repeated_role_headers(auth: AuthApp) -> None:
    body = await auth.user(email())
    headers = [
        ("Authorization", f"Bearer {body['token']}"),
        ("X-Auth-Required-Roles", "ADMIN"),
        ("X-Auth-Required-Roles", "USER"),
    ]
    assert_error(await auth.client.get("/verify/app/x", headers=headers), 400, "bad_request")


async def test_verify_ignores_the_clients_own_query_under_a_path(auth: AuthApp) -> None:
    body = await auth.user(email())
    response = await auth.client.get(
        "/verify/app/x?role=ADMIN&roles=ADMIN", headers={"Authorization": f"Bearer {body['token']}"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/verify", "/api/user", "/api/auth/sessions"])
async def test_two_authorization_headers_are_400(auth: AuthApp, path: str) -> None:
    body = await auth.user(email())
    headers = [("Authorization", f"Bearer {body['token']}"), ("Authorization", "Bearer other")]
    assert_error(await auth.client.get(path, headers=headers), 400, "bad_request")


async def test_two_authorization_headers_on_logout_are_400(auth: AuthApp) -> None:
    body = await auth.user(email())
    headers = [("Authorization", f"Bearer {body['token']}"), ("Authorization", f"Bearer {body['token']}")]
    assert_error(await auth.client.post("/api/auth/logout", json={}, headers=headers), 400, "bad_request")


@pytest.mark.parametrize("request_id", ["a b", "x\x7f", "<script>", "é"])
async def test_verify_replaces_an_invalid_request_id(auth: AuthApp, request_id: str) -> None:
    response = await auth.client.get("/verify", headers=[(b"X-Request-Id", request_id.encode("latin-1"))])
    assert response.headers["x-request-id"] != request_id
    assert response.headers["x-request-id"].isalnum()


async def test_verify_echoes_a_valid_request_id(auth: AuthApp) -> None:
    response = await auth.client.get("/verify", headers={"X-Request-Id": "req-1.2:3_x"})
    assert response.headers["x-request-id"] == "req-1.2:3_x"


# Two-factor accounts ---------------------------------------------------------------------------


async def test_two_factor_account_gets_no_session_from_a_password(auth: AuthApp) -> None:
    address = email()
    await auth.register(address)
    await auth.collection("users").update_one({"email": address}, {"$set": {"twoFactorEnabled": True}})
    user = await auth.find_user(address)
    assert user is not None
    sessions_before = await auth.collection("auth_sessions").count_documents({"user_id": str(user["_id"])})
    assert_error(await auth.login(address), 403, "2fa_required")
    assert await auth.collection("auth_sessions").count_documents({"user_id": str(user["_id"])}) == (
        sessions_before
    )
    assert await auth.collection("auth_audit").count_documents({"event": "login_2fa_required"}) >= 1
    # A wrong password still says nothing about two-factor.
    assert_error(await auth.login(address, "not the password at all 123"), 401, "invalid_credentials")


# Token claims -----------------------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
async def test_numeric_string_time_claims_are_refused(auth: AuthApp, claim: str) -> None:
    """A correctly signed token whose NumericDate is a string is not an access token."""
    body = await auth.user(email())
    payload = jwt.decode(body["token"], options={"verify_signature": False})
    payload[claim] = "9999999999" if claim == "exp" else str(int(time.time()) - 60)
    forged = jwt.encode(payload, auth.settings.jwt_secret, algorithm="HS256", headers={"typ": "at+jwt"})
    headers = {"Authorization": f"Bearer {forged}"}
    assert (await auth.client.get("/verify", headers=headers)).status_code == 401
    assert_error(await auth.client.get("/api/user", headers=headers), 401, "unauthorized")
