"""Every way a callback can be wrong is refused with no session and no user: tampered state, no
flow cookie, replay, an old flow, another nonce, an expired, HMAC-signed, unsigned or
other-issuer ID token; and the public (PKCE-only) client signs in."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
import pytest

from harness.oidc import (
    CLIENT_ID,
    CLIENT_SECRET,
    PUBLIC_CLIENT_ID,
    OidcProvider,
    client_metadata,
    start_oidc_provider,
)
from services.auth.social.flow import FlowSealer, new_flow
from services.auth.social.oidc import LOGOUT_EVENT, OpenIdProvider, ProviderRefused
from services.auth.social.settings import OpenIdSettings
from shared.crypto import b64url_encode
from tests.auth.conftest import AuthApp
from tests.auth.oidc_helpers import (
    CALLBACK,
    CLIENT_APP,
    FLOW_COOKIE_PREFIX,
    browser,
    callback_url,
    failure_code,
    flow_cookie,
    flow_cookies,
    has_session_cookie,
    idp_fixture,
    inbox_fixture,
    openid_app,
    query,
    start,
)

__all__ = ["idp_fixture", "inbox_fixture"]


def with_params(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    params = {**query(url), **changes}
    kept = {key: value for key, value in params.items() if value is not None}
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(kept), ""))


async def assert_refused(
    auth: AuthApp, client: httpx.AsyncClient, response: httpx.Response, code: str, reason: str
) -> None:
    """Refused with `code`, for `reason` (the audit record's outcome), leaving nothing behind."""
    assert failure_code(response) == code
    audit = auth.collection("auth_audit")
    reasons = [doc.get("outcome") async for doc in audit.find({"event": "social_login_failed"})]
    assert reasons[-1:] == [reason], reasons
    assert not has_session_cookie(client)
    assert await auth.collection("auth_sessions").count_documents({}) == 0
    assert await auth.collection("users").count_documents({}) == 0


async def test_tampered_state_is_refused(app_factory: Callable[..., Any], idp: OidcProvider) -> None:
    async with openid_app(app_factory, idp) as auth:
        client = browser(auth)
        callback = await callback_url(client, "alice", await start(client))
        response = await client.get(with_params(callback, state="x" * 43))
        await assert_refused(auth, client, response, "auth_failed", "state_mismatch")


async def test_callback_without_the_flow_cookie_is_refused(
    app_factory: Callable[..., Any], idp: OidcProvider
) -> None:
    async with openid_app(app_factory, idp) as auth:
        client = browser(auth)
        callback = await callback_url(client, "alice", await start(client))
        other = browser(auth)  # another browser: the code and state without the cookie
        await assert_refused(auth, other, await other.get(callback), "auth_failed", "missing_flow_cookie")


async def test_replayed_callback_is_refused(app_factory: Callable[..., Any], idp: OidcProvider) -> None:
    async with openid_app(app_factory, idp) as auth:
        client = browser(auth)
        callback = await callback_url(client, "alice", await start(client))
        name = flow_cookie(query(callback)["state"])
        cookie = client.cookies.get(name)
        assert cookie
        first = await client.get(callback)
        assert first.status_code == 302 and first.headers["location"] == CLIENT_APP
        assert flow_cookies(client) == []  # cleared by the callback
        replay = browser(auth)
        replay.cookies.set(name, cookie, domain="auth.test")
        response = await replay.get(callback)
        assert failure_code(response) == "auth_failed"
        assert not has_session_cookie(replay)
        assert await auth.collection("auth_sessions").count_documents({}) == 1  # the first one only


async def test_flow_older_than_ten_minutes_is_refused(
    app_factory: Callable[..., Any], idp: OidcProvider
) -> None:
    async with openid_app(app_factory, idp) as auth:
        client = browser(auth)
        callback = await callback_url(client, "alice", await start(client))
        sealer = FlowSealer(auth.settings.social.flow_key)
        state = query(callback)["state"]
        old = dataclasses.replace(
            new_flow("openid", "", portal=False), state=state, issued_at=int(time.time()) - 601
        )
        client.cookies.set(flow_cookie(state), sealer.seal(old), domain="auth.test")
        await assert_refused(auth, client, await client.get(callback), "auth_failed", "expired_flow")


async def test_other_nonce_is_refused(app_factory: Callable[..., Any], idp: OidcProvider) -> None:
    async with openid_app(app_factory, idp) as auth:
        client = browser(auth)
        authorize = with_params(await start(client), nonce="n" * 43)  # the provider signs this one
        callback = await callback_url(client, "alice", authorize)
        await assert_refused(auth, client, await client.get(callback), "auth_failed", "claim_nonce")


async def test_provider_error_is_refused(app_factory: Callable[..., Any], idp: OidcProvider) -> None:
    async with openid_app(app_factory, idp) as auth:
        client = browser(auth)
        state = query(await start(client))["state"]
        response = await client.get(CALLBACK, params={"error": "access_denied", "state": state})
        await assert_refused(auth, client, response, "auth_failed", "provider_error:access_denied")
        as_json = await client.get(CALLBACK, params={"state": state}, headers={"Accept": "application/json"})
        assert as_json.status_code == 401 and as_json.json()["code"] == "auth_failed"


async def test_hmac_signed_id_token_is_refused(app_factory: Callable[..., Any]) -> None:
    """The provider signs with the client secret (HS256), which the client knows too: refused."""
    client_config = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [CALLBACK],
        "id_token_signed_response_alg": "HS256",
    }
    weak = start_oidc_provider([client_config])
    try:
        async with openid_app(app_factory, weak) as auth:
            client = browser(auth)
            callback = await callback_url(client, "alice", await start(client))
            await assert_refused(auth, client, await client.get(callback), "auth_failed", "token_signature")
    finally:
        weak.stop()


async def test_unsigned_tokens_are_refused(idp: OidcProvider) -> None:
    """`alg: none` (oidc-provider will not issue one): a forged logout token with the right claims."""
    settings = OpenIdSettings(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, issuer=idp.issuer)
    provider = OpenIdProvider(settings, CALLBACK)
    now = int(time.time())
    claims = {
        "iss": idp.issuer,
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 60,
        "jti": "x",
        "sub": "sub-alice",
        "events": {LOGOUT_EVENT: {}},
    }
    header = b64url_encode(json.dumps({"alg": "none", "typ": "logout+jwt"}).encode())
    token = f"{header}.{b64url_encode(json.dumps(claims).encode())}."
    try:
        with pytest.raises(ProviderRefused):
            await provider.verify_logout_token(token)
    finally:
        await provider.aclose()


async def test_expired_id_token_is_refused(app_factory: Callable[..., Any]) -> None:
    expired = start_oidc_provider(client_metadata(CALLBACK, id_token_ttl=-3600))
    try:
        async with openid_app(app_factory, expired) as auth:
            client = browser(auth)
            callback = await callback_url(client, "alice", await start(client))
            await assert_refused(auth, client, await client.get(callback), "auth_failed", "claim_exp")
    finally:
        expired.stop()


async def test_id_token_from_another_issuer_is_refused(app_factory: Callable[..., Any]) -> None:
    """An issuer whose discovery names another provider's endpoints (a mix-up): the tokens carry
    that other issuer. Refused by the callback's `iss` (RFC 9207) and, without it, by the ID token."""
    other = start_oidc_provider(client_metadata(CALLBACK))
    lying = start_oidc_provider(client_metadata(CALLBACK), mixup_of=other.issuer)
    try:
        async with openid_app(app_factory, lying, OPENID_ISSUER=lying.issuer + "/mixup") as auth:
            for strip_iss, reason in ((False, "callback_issuer_mismatch"), (True, "claim_iss")):
                client = browser(auth)
                authorize = await start(client)
                assert authorize.startswith(other.issuer)
                callback = await callback_url(client, "alice", authorize)
                if strip_iss:
                    callback = with_params(callback, iss=None)
                await assert_refused(auth, client, await client.get(callback), "auth_failed", reason)
    finally:
        lying.stop()
        other.stop()


async def test_public_client_signs_in_with_pkce_only(
    app_factory: Callable[..., Any], idp: OidcProvider
) -> None:
    async with openid_app(
        app_factory, idp, OPENID_CLIENT_ID=PUBLIC_CLIENT_ID, OPENID_CLIENT_SECRET="", OPENID_USE_PKCE="true"
    ) as auth:
        client = browser(auth)
        authorize = await start(client)
        response = await client.get(await callback_url(client, "alice", authorize))
        assert response.status_code == 302 and response.headers["location"] == CLIENT_APP
        # the provider refuses the same code without the verifier: PKCE is what authenticates
        assert query(authorize)["code_challenge_method"] == "S256"


@pytest.mark.parametrize("order", ["first_begun_first", "second_begun_first"])
async def test_two_tabs_sign_in_without_clobbering_each_other(
    app_factory: Callable[..., Any], idp: OidcProvider, order: str
) -> None:
    """Two sign-ins begun in two tabs of one browser each keep their own flow cookie, so both
    callbacks succeed, in either order, each back to the `rd` it began with."""
    async with openid_app(app_factory, idp) as auth:
        client = browser(auth)
        first = await start(client, rd=CLIENT_APP + "/tab-one")
        second = await start(client, rd=CLIENT_APP + "/tab-two")
        assert len(flow_cookies(client)) == 2
        callbacks = {
            "/tab-one": await callback_url(client, "alice", first),
            "/tab-two": await callback_url(client, "alice", second),  # single sign-on at the provider
        }
        paths = ["/tab-one", "/tab-two"] if order == "first_begun_first" else ["/tab-two", "/tab-one"]
        for path in paths:
            response = await client.get(callbacks[path])
            assert response.status_code == 302, response.text
            assert response.headers["location"] == CLIENT_APP + path
        assert flow_cookies(client) == []
        assert await auth.collection("auth_sessions").count_documents({}) == 2


async def test_open_flows_are_capped(app_factory: Callable[..., Any], idp: OidcProvider) -> None:
    """At most three flows live at once in one browser: a fourth start drops the oldest."""
    async with openid_app(app_factory, idp) as auth:
        client = browser(auth)
        states = [query(await start(client))["state"] for _ in range(3)]
        assert sorted(flow_cookies(client)) == sorted(flow_cookie(state) for state in states)
        sealer = FlowSealer(auth.settings.social.flow_key)
        oldest = dataclasses.replace(new_flow("openid", "", portal=False), issued_at=int(time.time()) - 60)
        client.cookies.set(flow_cookie(states[0]), sealer.seal(oldest), domain="auth.test")
        client.cookies.set(FLOW_COOKIE_PREFIX + "0" * 16, "not-a-flow", domain="auth.test")
        newest = query(await start(client))["state"]
        kept = flow_cookies(client)
        assert len(kept) == 3 and flow_cookie(newest) in kept
        assert flow_cookie(states[0]) not in kept  # the oldest
        assert FLOW_COOKIE_PREFIX + "0" * 16 not in kept  # not a flow of ours
