"""The GitHub preset (OAuth2 + its user and emails API) against stand-ins: the local provider's
authorization and token endpoints through GITHUB_AUTHORIZATION_URL / GITHUB_TOKEN_URL, and a local
stand-in for GitHub's `/user` and `/user/emails` (GITHUB_API_URL). GitHub itself is unreachable."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from harness.oidc import CLIENT_SECRET, GitHubApiStandIn, OidcProvider, start_oidc_provider
from tests.auth.oidc_helpers import (
    CLIENT_APP,
    PORTAL,
    browser,
    callback_url,
    failure_code,
    needs_provider,
    query,
    start,
)

pytestmark = needs_provider
GITHUB_CALLBACK = PORTAL + "/oauth/github/callback"


@pytest.fixture(scope="module", name="github")
def github_fixture() -> Iterator[tuple[OidcProvider, GitHubApiStandIn]]:
    client = {
        "client_id": "github-app",
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [GITHUB_CALLBACK],
        "token_endpoint_auth_method": "client_secret_post",  # GitHub takes the secret in the body
    }
    provider = start_oidc_provider([client])
    api = GitHubApiStandIn(provider.issuer + "/me").start()
    yield provider, api
    api.stop()
    provider.stop()


def github_env(github: tuple[OidcProvider, GitHubApiStandIn], **overrides: str) -> dict[str, str]:
    provider, api = github
    return {
        "DOMAIN_SERVER": PORTAL,
        "DOMAIN_CLIENT": CLIENT_APP,
        "AUTH_REDIRECT_DOMAINS": ".example.com",
        "ALLOW_SOCIAL_LOGIN": "true",
        "ALLOW_SOCIAL_REGISTRATION": "true",
        "GITHUB_CLIENT_ID": "github-app",
        "GITHUB_CLIENT_SECRET": CLIENT_SECRET,
        "GITHUB_AUTHORIZATION_URL": provider.issuer + "/auth",
        "GITHUB_TOKEN_URL": provider.issuer + "/token",
        "GITHUB_API_URL": api.url,
        # the stand-in reads the provider's userinfo endpoint, which needs `openid`
        "GITHUB_SCOPE": "openid user:email",
        **overrides,
    }


async def test_github_sign_in_uses_the_numeric_id_and_the_verified_primary_address(
    app_factory: Callable[..., Any], github: tuple[OidcProvider, GitHubApiStandIn]
) -> None:
    async with app_factory(**github_env(github)) as auth:
        config = (await auth.client.get("/api/config")).json()
        assert config["githubLoginEnabled"] is True and config["socialLogins"] == ["github"]
        for _ in range(2):  # first sign-in, then the returning user
            client = browser(auth)
            authorize = await start(client, "/oauth/github")
            params = query(authorize)
            assert params["code_challenge_method"] == "S256" and params["state"]
            assert params["redirect_uri"] == GITHUB_CALLBACK
            response = await client.get(await callback_url(client, "alice", authorize, GITHUB_CALLBACK))
            assert response.status_code == 302 and response.headers["location"] == CLIENT_APP
        users = [doc async for doc in auth.collection("users").find({})]
        assert len(users) == 1
        user = users[0]
        assert user["provider"] == "github" and user["githubId"] == str(github[1].ids["sub-alice"])
        assert user["email"] == "alice@idp.example.com" and user["emailVerifiedBy"] == "provider"
        assert user["username"] == "alice"


async def test_github_unverified_primary_address_is_never_linked(
    app_factory: Callable[..., Any], github: tuple[OidcProvider, GitHubApiStandIn]
) -> None:
    async with app_factory(**github_env(github, SOCIAL_AUTO_LINK_VERIFIED="true")) as auth:
        await auth.register("unverified@idp.example.com")
        await auth.collection("users").update_many(
            {}, {"$set": {"emailVerified": True, "emailVerifiedBy": "mail"}}
        )
        client = browser(auth)
        authorize = await start(client, "/oauth/github")
        response = await client.get(await callback_url(client, "unverified", authorize, GITHUB_CALLBACK))
        assert failure_code(response) == "link_required"
        client = browser(auth)
        state = query(await start(client, "/oauth/github"))["state"]
        bad_code = await client.get(GITHUB_CALLBACK, params={"code": "not-a-code", "state": state})
        assert failure_code(bad_code) == "auth_failed"
