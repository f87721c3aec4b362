"""The Google preset (LibreChat's GOOGLE_* variables, OpenID Connect) against the local provider
through GOOGLE_ISSUER: Google itself cannot be reached from here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from harness.oidc import CLIENT_ID, CLIENT_SECRET, OidcProvider, client_metadata, start_oidc_provider
from tests.auth.oidc_helpers import (
    CALLBACK,
    CLIENT_APP,
    PORTAL,
    browser,
    callback_url,
    failure_code,
    start,
)

GOOGLE_CALLBACK = PORTAL + "/oauth/google/callback"


@pytest.fixture(scope="module", name="google")
def google_fixture() -> Iterator[OidcProvider]:
    provider = start_oidc_provider(client_metadata(CALLBACK, redirect_uris=[GOOGLE_CALLBACK, CALLBACK]))
    yield provider
    provider.stop()


def google_env(google: OidcProvider, **overrides: str) -> dict[str, str]:
    return {
        "DOMAIN_SERVER": PORTAL,
        "DOMAIN_CLIENT": CLIENT_APP,
        "AUTH_REDIRECT_DOMAINS": ".example.com",
        "ALLOW_SOCIAL_LOGIN": "true",
        "ALLOW_SOCIAL_REGISTRATION": "true",
        "GOOGLE_CLIENT_ID": CLIENT_ID,
        "GOOGLE_CLIENT_SECRET": CLIENT_SECRET,
        "GOOGLE_ISSUER": google.issuer,
        **overrides,
    }


async def test_google_sign_in_creates_a_google_user(
    app_factory: Callable[..., Any], google: OidcProvider
) -> None:
    async with app_factory(**google_env(google)) as auth:
        config = (await auth.client.get("/api/config")).json()
        assert config["googleLoginEnabled"] is True and config["openidLoginEnabled"] is False
        assert config["socialLogins"] == ["google"]
        page = await auth.client.get("/portal/login")
        assert 'href="/oauth/google?portal=1"' in page.text
        for _ in range(2):  # first sign-in, then the returning user
            client = browser(auth)
            authorize = await start(client, "/oauth/google")
            assert "code_challenge=" in authorize and "nonce=" in authorize and "state=" in authorize
            response = await client.get(await callback_url(client, "alice", authorize, GOOGLE_CALLBACK))
            assert response.status_code == 302 and response.headers["location"] == CLIENT_APP
        users = [doc async for doc in auth.collection("users").find({})]
        assert len(users) == 1
        assert users[0]["provider"] == "google" and users[0]["googleId"] == "sub-alice"
        assert "openidId" not in users[0] and "openidIssuer" not in users[0]


async def test_google_registration_follows_the_same_rules(
    app_factory: Callable[..., Any], google: OidcProvider
) -> None:
    async with app_factory(**google_env(google, ALLOW_SOCIAL_REGISTRATION="false")) as auth:
        client = browser(auth)
        authorize = await start(client, "/oauth/google")
        response = await client.get(await callback_url(client, "alice", authorize, GOOGLE_CALLBACK))
        assert failure_code(response) == "social_registration_disabled"
        # the OpenID routes are not configured here
        assert (await client.get("/oauth/openid", headers={"Accept": "application/json"})).status_code == 404
