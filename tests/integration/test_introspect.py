"""POST /api/auth/introspect (RFC 7662) for internal callers holding a service key (AUTH_SERVICE_KEYS)."""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest

from harness import Server
from harness.inprocess import InProcessApp
from services.auth.settings import load_settings
from shared.config import ConfigError, Env
from shared.http import ServiceKey
from tests.integration.support import running_app

BILLING = secrets.token_urlsafe(32)
BILLING_NEXT = secrets.token_urlsafe(32)  # the same caller during a secret rotation
REPORTS = secrets.token_urlsafe(32)
SERVICE_KEYS = f"billing:introspect:{BILLING},billing:introspect:{BILLING_NEXT},reports:introspect:{REPORTS}"
PATH = "/api/auth/introspect"
FORM = "application/x-www-form-urlencoded"


@dataclass
class Introspection:
    app: InProcessApp
    client: httpx.AsyncClient
    user: dict[str, Any]

    async def ask(
        self,
        token: str | None = None,
        key: str | None = BILLING,
        *,
        client: httpx.AsyncClient | None = None,
        **form: str,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        data = dict(form)
        if token is not None:
            data["token"] = token
        return await (client or self.client).post(PATH, data=data, headers=headers)


@pytest.fixture(scope="module")
async def intro(mongo: Server, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Introspection]:
    root = tmp_path_factory.mktemp("introspect")
    async with running_app(
        mongo.port, root, AUTH_SERVICE_KEYS=SERVICE_KEYS, TRUST_PROXY="1", TRUSTED_PROXIES="10.0.0.0/8"
    ) as app:
        user = await app.user("introspected@example.com")
        yield Introspection(app, app.new_client("10.1.2.3"), user)


def assert_inactive(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.json() == {"active": False}
    assert response.headers["cache-control"] == "no-store"


# Caller authentication --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Bearer wrong-key-wrong-key-wrong-key",
        f"Bearer {BILLING[:-1]}",
        f"Bearer {BILLING}x",
        f"Basic {BILLING}",
        f"{BILLING}",
        "Bearer " + "A" * 5000,
    ],
    ids=["none", "empty", "wrong", "prefix", "suffix", "basic", "no-scheme", "huge"],
)
async def test_without_a_valid_service_key_is_401(intro: Introspection, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = await intro.client.post(PATH, data={"token": intro.user["token"]}, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "active" not in response.json()


async def test_a_user_access_token_is_not_a_service_key(intro: Introspection) -> None:
    response = await intro.ask(intro.user["token"], key=intro.user["token"])
    assert response.status_code == 401


async def test_key_elsewhere_than_the_header_is_401(intro: Introspection) -> None:
    body = {"token": intro.user["token"], "client_secret": BILLING, "access_token": BILLING}
    response = await intro.client.post(f"{PATH}?access_token={BILLING}", data=body)
    assert response.status_code == 401


async def test_network_location_is_not_a_credential(intro: Introspection) -> None:
    """An outside peer claiming 127.0.0.1, or a trusted proxy forwarding it, still needs the key."""
    for peer in ("203.0.113.9", "10.0.0.2", "127.0.0.1"):
        client = intro.app.new_client(peer)
        response = await client.post(
            PATH, data={"token": intro.user["token"]}, headers={"X-Forwarded-For": "127.0.0.1"}
        )
        assert response.status_code == 401, peer


async def test_every_configured_secret_works(intro: Introspection) -> None:
    for key in (BILLING, BILLING_NEXT, REPORTS):
        response = await intro.ask(intro.user["token"], key=key)
        assert response.status_code == 200
        assert response.json()["active"] is True


async def test_key_lacking_the_scope_is_403(intro: Introspection) -> None:
    """Only `introspect` exists today; a key with another scope is built directly (the parser refuses it)."""
    context = intro.app.ctx
    original = context.settings
    other = secrets.token_urlsafe(32)
    context.settings = dataclasses.replace(
        original,
        service_keys=(*original.service_keys, ServiceKey("metrics", frozenset({"metrics"}), other.encode())),
    )
    try:
        response = await intro.ask(intro.user["token"], key=other)
    finally:
        context.settings = original
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"


def test_service_key_configuration_is_checked(tmp_path: Any) -> None:
    base = {
        "AUTHGATE_ENV": "test",
        "JWT_SECRET": "0123456789abcdef" * 4,
        "JWT_REFRESH_SECRET": "fedcba9876543210" * 4,
        "TOTP_ENCRYPTION_KEY": "0f1e2d3c4b5a6978" * 4,
        "MONGO_URI": "mongodb://127.0.0.1:1/x",
        "MODERATION_URL": "http://127.0.0.1:9",
        "MODERATION_API_KEY": "k" * 32,
    }
    for value in (
        f"billing:admin-everything:{BILLING}",  # unknown scope
        "billing:introspect:short",  # secret under 24 bytes
        f"billing:introspect:{BILLING},reports:introspect:{BILLING}",  # one secret, two names
        f"billing::{BILLING}",
        "billing-introspect",
    ):
        with pytest.raises(ConfigError) as raised:
            load_settings(Env([{**base, "AUTH_SERVICE_KEYS": value}]), root=tmp_path)
        assert raised.value.name == "AUTH_SERVICE_KEYS"
        assert BILLING not in str(raised.value), "the error message must not echo a secret"


# Request shape --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "content"),
    [
        ("application/json", None),
        ("text/plain", b"token=x"),
        ("multipart/form-data; boundary=x", b"--x--"),
        (None, b"token=x"),
    ],
)
async def test_only_form_encoding_is_accepted(
    intro: Introspection, content_type: str | None, content: bytes | None
) -> None:
    headers = {"Authorization": f"Bearer {BILLING}"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    body = content if content is not None else json.dumps({"token": intro.user["token"]}).encode()
    response = await intro.client.post(PATH, content=body, headers=headers)
    assert response.status_code == 415, response.text


async def test_form_with_charset_is_fine(intro: Introspection) -> None:
    response = await intro.client.post(
        PATH,
        content=f"token={intro.user['token']}".encode(),
        headers={"Authorization": f"Bearer {BILLING}", "Content-Type": f"{FORM}; charset=UTF-8"},
    )
    assert response.status_code == 200
    assert response.json()["active"] is True


@pytest.mark.parametrize("content", [b"", b"token=", b"tok=abc", b"token=a&token=b", b"token=\xff\xfe"])
async def test_missing_or_ambiguous_token_is_400(intro: Introspection, content: bytes) -> None:
    response = await intro.client.post(
        PATH, content=content, headers={"Authorization": f"Bearer {BILLING}", "Content-Type": FORM}
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_request"


async def test_percent_escaped_garbage_is_just_inactive(intro: Introspection) -> None:
    response = await intro.client.post(
        PATH, content=b"token=%ff%fe%00", headers={"Authorization": f"Bearer {BILLING}", "Content-Type": FORM}
    )
    assert_inactive(response)


async def test_oversized_body_is_refused(intro: Introspection) -> None:
    response = await intro.ask("x" * (64 * 1024))
    assert response.status_code == 413


async def test_only_post(intro: Introspection) -> None:
    response = await intro.client.get(
        f"{PATH}?token={intro.user['token']}", headers={"Authorization": f"Bearer {BILLING}"}
    )
    assert response.status_code == 405


# Answers ------------------------------------------------------------------------------------------


async def test_valid_token_full_response(intro: Introspection) -> None:
    token = intro.user["token"]
    response = await intro.ask(token)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    claims = jwt.decode(token, options={"verify_signature": False})
    user = intro.user["user"]
    assert body["active"] is True
    assert body["sub"] == user["id"] == claims["sub"]
    assert body["email"] == user["email"]
    assert body["role"] == "USER"
    assert body["sid"] == claims["sid"]
    assert body["jti"] == claims["jti"]
    assert body["iat"] == claims["iat"] and body["exp"] == claims["exp"]
    assert body["iss"] == "authgate" and body["aud"] == "authgate"
    assert body["token_type"] == "Bearer"  # RFC 7662 §2.2: a type from RFC 6749 §5.1
    assert isinstance(body["exp"], int) and body["exp"] > time.time()
    assert "password" not in response.text and "refresh" not in response.text


@pytest.mark.parametrize("hint", ["access_token", "refresh_token", "something_else"])
async def test_token_type_hint_never_changes_the_answer(intro: Introspection, hint: str) -> None:
    """RFC 7662 §2.1: a wrong or unknown hint must not stop the server from finding the token."""
    response = await intro.ask(intro.user["token"], token_type_hint=hint)
    assert response.status_code == 200
    assert response.json()["active"] is True


async def test_introspection_is_audited_with_the_caller_name(intro: Introspection) -> None:
    await intro.ask(intro.user["token"], key=REPORTS)
    records = await intro.app.ctx.audit.query(user_id=intro.user["user"]["id"])
    introspections = [r for r in records if r["event"] == "token_introspected"]
    assert introspections and introspections[0]["actor"] == "reports"
    assert not any(intro.user["token"] in json.dumps(r, default=str) for r in records)


def _forge(intro: Introspection, secret: str | None = None, **changes: Any) -> str:
    payload = jwt.decode(intro.user["token"], options={"verify_signature": False})
    payload.update(changes)
    payload = {k: v for k, v in payload.items() if v is not None}
    key = secret or intro.app.ctx.settings.jwt_secret
    return jwt.encode(payload, key, algorithm="HS256", headers={"typ": "at+jwt"})


async def test_inactive_tokens(intro: Introspection) -> None:
    now = int(time.time())
    cases = {
        "garbage": "garbage",
        "three-dots": "a.b.c",
        "refresh-token": intro.user["refresh_token"],
        "expired": _forge(intro, exp=now - 600, iat=now - 1600),
        "other-secret": _forge(intro, secret=secrets.token_hex(32)),
        "other-issuer": _forge(intro, iss="someone-else"),
        "other-audience": _forge(intro, aud="billing"),
        "unknown-session": _forge(intro, sid="no-such-session"),
        "session-of-another-user": _forge(intro, sub="0123456789abcdef01234567"),
        "alg-none": intro.user["token"].rsplit(".", 1)[0] + ".",
    }
    for name, token in cases.items():
        response = await intro.ask(token)
        assert response.status_code == 200, name
        assert response.json() == {"active": False}, name
        assert response.headers["cache-control"] == "no-store", name
    # Control: the forging helper makes an active token when nothing is changed.
    assert (await intro.ask(_forge(intro))).json()["active"] is True


async def test_revoked_token_is_inactive(intro: Introspection) -> None:
    body = await intro.app.user("introspect-logout@example.com")
    token = body["token"]
    assert (await intro.ask(token)).json()["active"] is True
    logout = await intro.app.new_client().post(
        "/api/auth/logout", headers={"Authorization": f"Bearer {token}"}
    )
    assert logout.status_code == 200
    assert_inactive(await intro.ask(token))
    assert_inactive(await intro.ask(token + "="))
