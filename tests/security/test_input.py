"""Input and failure items with no test elsewhere: 50 (`Forwarded` is not a trust channel),
54 (repository functions refuse non-string input), 55 (huge emails refused quickly),
58 (methods), 67 (last-resort handler), 69 (argon2 load shedding)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.auth.conftest import CLIENT_IP, STRONG_PASSWORD, AuthApp

OPERATOR_VALUES: list[Any] = [{"$ne": None}, {"$gt": ""}, {"$regex": ".*"}, ["x"], 1, None]


def email() -> str:
    return f"sec-{secrets.token_hex(4)}@example.com"


# Item 50 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env",
    [{}, {"TRUST_PROXY": "1", "TRUSTED_PROXIES": f"{CLIENT_IP}/32"}],
    ids=["no-proxy", "trusted-proxy"],
)
async def test_rfc7239_forwarded_header_is_never_trusted(
    app_factory: Callable[..., Any], env: dict[str, str]
) -> None:
    """Only X-Forwarded-For from a trusted peer moves the client address; `Forwarded` never does."""
    async with app_factory(**env) as auth:
        address = email()
        await auth.register(address)
        response = await auth.client.post(
            "/api/auth/login",
            json={"email": address, "password": STRONG_PASSWORD},
            headers={"Forwarded": "for=198.51.100.77;proto=https, for=192.0.2.1"},
        )
        assert response.status_code == 200
        sessions = (await auth.get("/api/auth/sessions", response.json()["token"])).json()
        # Behind a trusted proxy that sent no X-Forwarded-For the client is `unknown`, never the
        # address the Forwarded header names.
        expected = "unknown" if env else CLIENT_IP
        assert [s["ip"] for s in sessions] == [expected]


# Item 54 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", OPERATOR_VALUES, ids=repr)
async def test_repository_functions_refuse_non_string_input(auth: AuthApp, value: Any) -> None:
    """Even past the schemas, an operator object can never become a query."""
    body = await auth.user(email())
    assert body["user"]["id"]
    accounts, sessions = auth.ctx.accounts, auth.ctx.sessions
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: accounts.find_by_email(value),
        lambda: accounts.find_by_id(value),
        lambda: accounts.username_exists(value),
        lambda: sessions.find_live(value),
        lambda: sessions.find_by_token(value),
        lambda: sessions.rotate(value, CLIENT_IP, None),
        lambda: accounts.authenticate(value, STRONG_PASSWORD),
    ]
    for index, call in enumerate(calls):
        with pytest.raises(TypeError):
            await call()
            pytest.fail(f"call #{index} accepted {value!r}")


# Item 55 -------------------------------------------------------------------------------------------

HUGE_EMAILS = [
    "a" * 50_000 + "@example.com",
    "a@" + "." * 50_000,
    '"' * 50_000 + "@example.com",
    "a@" + "a." * 25_000 + "com",
    "a" * 64 + "@" + ("b" * 63 + ".") * 3 + "com" + "\u0000",
]


@pytest.mark.parametrize("address", HUGE_EMAILS, ids=lambda a: f"{len(a)}-chars")
async def test_huge_or_hostile_emails_are_refused_quickly(auth: AuthApp, address: str) -> None:
    for send in (auth.register, auth.login):
        started = time.perf_counter()
        response = await send(address)
        elapsed = time.perf_counter() - started
        # Escaped in JSON, some are over the 64 KiB body cap (413); the rest fail the schema (422).
        assert response.status_code in (413, 422), response.text
        assert response.json()["code"] in ("payload_too_large", "invalid_input")
        assert elapsed < 2.0  # generous: the real cost is a length check


# Item 58 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["TRACE", "PUT", "PATCH", "DELETE", "CONNECT"])
async def test_only_the_documented_methods_are_allowed(auth: AuthApp, method: str) -> None:
    for path in ("/api/auth/login", "/api/auth/register", "/api/auth/refresh", "/api/user"):
        response = await auth.client.request(method, path)
        assert response.status_code == 405, (method, path)
        assert response.json()["code"] == "method_not_allowed"
        assert "set-cookie" not in response.headers


# Item 67 -------------------------------------------------------------------------------------------


async def test_unexpected_error_is_a_generic_500_with_a_request_id(
    auth: AuthApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    detail = f"secret-internal-detail-{secrets.token_hex(4)}"

    async def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(detail)

    monkeypatch.setattr(auth.ctx.accounts, "check_password", explode)
    transport = httpx.ASGITransport(app=auth.app, raise_app_exceptions=False, client=(CLIENT_IP, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="https://auth.test") as client:
        response = await client.post(
            "/api/auth/login",
            json={"email": email(), "password": STRONG_PASSWORD},
            headers={"X-Request-Id": "trace-500"},
        )
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {
        "code": "internal_error",
        "message": "Internal error.",
        "request_id": "trace-500",
    }
    assert response.headers["x-request-id"] == "trace-500"
    assert detail not in response.text
    assert "Traceback" not in response.text
    assert "set-cookie" not in response.headers


# Item 69 -------------------------------------------------------------------------------------------


async def test_password_work_is_bounded_and_sheds_load_with_503(app_factory: Callable[..., Any]) -> None:
    async with app_factory(ARGON2_THREADS="1", ARGON2_MAX_QUEUE="1") as auth:
        responses = await asyncio.gather(*(auth.login(email(), "wrong password " * 2) for _ in range(30)))
        statuses = sorted(r.status_code for r in responses)
        assert set(statuses) <= {401, 503}, statuses
        shed = [r for r in responses if r.status_code == 503]
        assert shed, "30 parallel logins with 2 hashing slots never shed load"
        for response in shed:
            assert response.json()["code"] == "overloaded"
            assert int(response.headers["retry-after"]) >= 1
            assert "set-cookie" not in response.headers
        assert statuses.count(401) >= 1
        # Once the burst is over, the service answers normally again.
        assert (await auth.login(email(), "wrong password again")).status_code == 401
