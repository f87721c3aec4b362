"""Sessions, the current user, config, health and the OpenAPI document through the API."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import jsonschema_rs
import pytest
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR
from starlette.routing import Route

from tests.auth.api_helpers import (
    CONFIG_FIELDS,
    SESSION_FIELDS,
    USER_FIELDS,
    assert_error,
    email,
    no_hash_anywhere,
)
from tests.auth.conftest import CLIENT_IP, AuthApp

# Sessions ----------------------------------------------------------------------------


async def test_sessions_list(auth: AuthApp) -> None:
    address = email()
    await auth.register(address)
    first = await auth.login_body(address, **{"User-Agent": "browser-one"})
    second = await auth.login_body(address, **{"User-Agent": "browser-two"})
    response = await auth.get("/api/auth/sessions", first["token"])
    assert response.status_code == 200, response.text
    sessions = response.json()
    assert isinstance(sessions, list)
    assert len(sessions) == 2
    for item in sessions:
        assert set(item) == SESSION_FIELDS
        assert item["ip"] == CLIENT_IP
    current = [s for s in sessions if s["current"]]
    assert len(current) == 1
    assert current[0]["user_agent"] == "browser-one"
    assert {s["user_agent"] for s in sessions} == {"browser-one", "browser-two"}
    # Session ids listed are not refresh tokens.
    assert all(s["id"] not in (first["refresh_token"], second["refresh_token"]) for s in sessions)
    # Another user sees only their own.
    other = await auth.user(email())
    assert len((await auth.get("/api/auth/sessions", other["token"])).json()) == 1


async def test_sessions_require_a_token(auth: AuthApp) -> None:
    body = await auth.user(email())
    for method, path in (
        ("GET", "/api/auth/sessions"),
        ("DELETE", "/api/auth/sessions"),
        ("DELETE", "/api/auth/sessions/x"),
    ):
        response = await auth.client.request(method, path)
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")
        response = await auth.client.request(
            method, path, headers={"Authorization": f"Bearer {body['refresh_token']}"}
        )
        assert_error(response, 401, "unauthorized")


async def test_delete_one_session(auth: AuthApp) -> None:
    address = email()
    await auth.register(address)
    first = await auth.login_body(address)
    second = await auth.login_body(address)
    sessions = (await auth.get("/api/auth/sessions", first["token"])).json()
    other_id = next(s["id"] for s in sessions if not s["current"])
    bearer = {"Authorization": f"Bearer {first['token']}"}
    response = await auth.client.delete(f"/api/auth/sessions/{other_id}", headers=bearer)
    assert response.status_code == 200, response.text
    assert response.json()["revoked"] == 1
    assert_error(await auth.refresh(second["refresh_token"]), 401, "invalid_refresh_token")
    assert_error(await auth.get("/api/user", second["token"]), 401, "unauthorized")
    assert (await auth.get("/api/user", first["token"])).status_code == 200
    # Already revoked, unknown, and another user's session: all 404.
    assert_error(await auth.client.delete(f"/api/auth/sessions/{other_id}", headers=bearer), 404, "not_found")
    assert_error(await auth.client.delete("/api/auth/sessions/nope", headers=bearer), 404, "not_found")
    stranger = await auth.user(email())
    stranger_id = (await auth.get("/api/auth/sessions", stranger["token"])).json()[0]["id"]
    assert_error(
        await auth.client.delete(f"/api/auth/sessions/{stranger_id}", headers=bearer), 404, "not_found"
    )
    assert (await auth.refresh(stranger["refresh_token"])).status_code == 200


async def test_delete_own_current_session(auth: AuthApp) -> None:
    body = await auth.user(email())
    current = (await auth.get("/api/auth/sessions", body["token"])).json()[0]["id"]
    response = await auth.client.delete(
        f"/api/auth/sessions/{current}", headers={"Authorization": f"Bearer {body['token']}"}
    )
    assert response.status_code == 200
    assert_error(await auth.get("/api/user", body["token"]), 401, "unauthorized")


async def test_delete_all_other_sessions(auth: AuthApp) -> None:
    address = email()
    await auth.register(address)
    logins = [await auth.login_body(address) for _ in range(4)]
    keep = logins[1]
    response = await auth.client.delete(
        "/api/auth/sessions", headers={"Authorization": f"Bearer {keep['token']}"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["revoked"] == 3
    for other in (logins[0], logins[2], logins[3]):
        assert_error(await auth.refresh(other["refresh_token"]), 401, "invalid_refresh_token")
    assert (await auth.get("/api/user", keep["token"])).status_code == 200
    sessions = (await auth.get("/api/auth/sessions", keep["token"])).json()
    assert len(sessions) == 1
    assert sessions[0]["current"] is True
    assert (await auth.refresh(keep["refresh_token"])).status_code == 200


# User and config -------------------------------------------------------------------------


async def test_current_user(auth: AuthApp) -> None:
    address = email()
    body = await auth.user(address)
    response = await auth.get("/api/user", body["token"])
    assert response.status_code == 200, response.text
    user = response.json()
    assert set(user) == USER_FIELDS
    assert user == body["user"]
    assert user["email"] == address
    doc = await auth.find_user(address)
    assert doc is not None
    assert user["id"] == str(doc["_id"])
    no_hash_anywhere(response.text)
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "header", ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer not-a-jwt", "Token abc"]
)
async def test_current_user_unauthorized(auth: AuthApp, header: str) -> None:
    headers = {"Authorization": header} if header else {}
    response = await auth.client.get("/api/user", headers=headers)
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_token_in_query_string_is_ignored(auth: AuthApp) -> None:
    body = await auth.user(email())
    response = await auth.client.get("/api/user", params={"access_token": body["token"]})
    assert_error(response, 401, "unauthorized")


async def test_config_keys(app_factory: Callable[..., Any]) -> None:
    async with app_factory(
        ALLOW_REGISTRATION="false", ALLOW_SOCIAL_LOGIN="yes", MIN_PASSWORD_LENGTH="18"
    ) as auth:
        response = await auth.client.get("/api/config")
        assert response.status_code == 200
        assert {key: response.json()[key] for key in CONFIG_FIELDS} == {
            "emailLoginEnabled": True,
            "registrationEnabled": False,
            "socialLoginEnabled": True,
            "socialRegistrationEnabled": False,
            "passwordResetEnabled": False,
            "emailEnabled": False,
            "minPasswordLength": 18,
        }
    async with app_factory(ALLOW_EMAIL_LOGIN="0", ALLOW_SOCIAL_REGISTRATION="1") as auth:
        body = (await auth.client.get("/api/config")).json()
        assert set(body) >= CONFIG_FIELDS
        assert body["emailLoginEnabled"] is False
        assert body["registrationEnabled"] is True
        assert body["socialRegistrationEnabled"] is True
        assert body["minPasswordLength"] == 15


# Health and OpenAPI ----------------------------------------------------------------------


async def test_health_and_readiness(auth: AuthApp) -> None:
    response = await auth.client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    response = await auth.client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["store"] == "ok"


TABLE_ROUTES = {
    ("/api/auth/register", "POST"),
    ("/api/auth/login", "POST"),
    ("/api/auth/refresh", "POST"),
    ("/api/auth/logout", "POST"),
    ("/api/auth/sessions", "GET"),
    ("/api/auth/sessions", "DELETE"),
    ("/api/auth/sessions/{session_id}", "DELETE"),
    ("/api/user", "GET"),
    ("/api/config", "GET"),
    ("/healthz", "GET"),
    ("/readyz", "GET"),
}


async def openapi_doc(auth: AuthApp) -> dict[str, Any]:
    response = await auth.client.get("/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def served_routes(auth: AuthApp) -> set[tuple[str, str]]:
    return {
        (route.path, method)
        for route in auth.app.routes
        if isinstance(route, Route) and route.methods
        for method in route.methods
        # The portal's HTML pages are for browsers, not API operations (docs: README's portal rows).
        if method != "HEAD" and route.path != "/openapi.json" and not route.path.startswith("/portal/")
    }


def documented_routes(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, item in doc["paths"].items() for method in item}


async def test_openapi_document(auth: AuthApp) -> None:
    doc = await openapi_doc(auth)
    assert doc["openapi"].startswith("3.1")
    errors = [str(e) for e in OPENAPI_31_VALIDATOR.iter_errors(doc)]
    assert errors == []
    documented = documented_routes(doc)
    assert documented >= TABLE_ROUTES, TABLE_ROUTES - documented
    assert documented <= served_routes(auth), documented - served_routes(auth)
    # Every reference resolves.
    text = json.dumps(doc)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        name = ref.removeprefix("#/components/schemas/")
        assert name in doc["components"]["schemas"], ref
    register_schema = doc["components"]["schemas"]["RegisterRequest"]
    assert register_schema["additionalProperties"] is False
    assert set(register_schema["required"]) == {"name", "email", "password", "confirm_password"}


async def test_openapi_lists_every_served_route(auth: AuthApp) -> None:
    doc = await openapi_doc(auth)
    missing = served_routes(auth) - documented_routes(doc)
    assert not missing, sorted(missing)


async def test_responses_match_the_openapi_document(auth: AuthApp) -> None:
    """The answers the service really gives validate against the schemas it publishes."""
    doc = await openapi_doc(auth)

    def check(path: str, method: str, response: httpx.Response) -> None:
        entry = doc["paths"][path][method]["responses"][str(response.status_code)]
        schema = {**entry["content"]["application/json"]["schema"], "components": doc["components"]}
        jsonschema_rs.validate(schema, response.json())

    address = email()
    check("/api/auth/register", "post", await auth.register(address, username="oracle"))
    check("/api/auth/register", "post", await auth.register(email(), username="oracle"))
    login = await auth.login(address)
    check("/api/auth/login", "post", login)
    check("/api/auth/login", "post", await auth.login(address, refresh_token_in_body=True))
    check("/api/auth/login", "post", await auth.login(address, "wrong password entirely"))
    token = login.json()["token"]
    check("/api/auth/refresh", "post", await auth.client.post("/api/auth/refresh"))
    check("/api/auth/sessions", "get", await auth.get("/api/auth/sessions", token))
    check("/api/user", "get", await auth.get("/api/user", token))
    check("/api/user", "get", await auth.get("/api/user"))
    check("/api/config", "get", await auth.client.get("/api/config"))
    check("/healthz", "get", await auth.client.get("/healthz"))
    check("/readyz", "get", await auth.client.get("/readyz"))
    bearer = {"Authorization": f"Bearer {token}"}
    check(
        "/api/auth/sessions/{session_id}",
        "delete",
        await auth.client.delete("/api/auth/sessions/x", headers=bearer),
    )
    check("/api/auth/sessions", "delete", await auth.client.delete("/api/auth/sessions", headers=bearer))
    check("/api/auth/logout", "post", await auth.client.post("/api/auth/logout", headers=bearer))
