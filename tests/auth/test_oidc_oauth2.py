"""The OAuth2 presets (GitHub, Discord, Facebook: OAuth2 + their profile APIs) against stand-ins:
the local provider's authorization and token endpoints through `<PRESET>_AUTHORIZATION_URL` and
`_TOKEN_URL`, and a local stand-in answering their profile APIs' documented shapes
(`<PRESET>_API_URL`). None of the real providers can be reached from here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from harness.oidc import CLIENT_SECRET, OidcProvider, ProfileApiStandIn, start_oidc_provider
from tests.auth.conftest import AuthApp
from tests.auth.oidc_helpers import (
    CLIENT_APP,
    PORTAL,
    browser,
    callback_url,
    failure_code,
    query,
    start,
)

PRESETS = ("github", "discord", "facebook")
Stack = tuple[OidcProvider, ProfileApiStandIn]


@pytest.fixture(scope="module", name="stack")
def stack_fixture() -> Iterator[Stack]:
    client = {
        "client_id": "oauth2-app",
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [f"{PORTAL}/oauth/{name}/callback" for name in PRESETS],
        "token_endpoint_auth_method": "client_secret_post",  # these providers take it in the body
    }
    provider = start_oidc_provider([client])
    api = ProfileApiStandIn(provider.issuer + "/me").start()
    yield provider, api
    api.stop()
    provider.stop()


def preset_env(stack: Stack, name: str, **overrides: str) -> dict[str, str]:
    provider, api = stack
    prefix = name.upper()
    return {
        "DOMAIN_SERVER": PORTAL,
        "DOMAIN_CLIENT": CLIENT_APP,
        "AUTH_REDIRECT_DOMAINS": ".example.com",
        "ALLOW_SOCIAL_LOGIN": "true",
        "ALLOW_SOCIAL_REGISTRATION": "true",
        f"{prefix}_CLIENT_ID": "oauth2-app",
        f"{prefix}_CLIENT_SECRET": CLIENT_SECRET,
        f"{prefix}_AUTHORIZATION_URL": provider.issuer + "/auth",
        f"{prefix}_TOKEN_URL": provider.issuer + "/token",
        f"{prefix}_API_URL": api.url,
        # the stand-in reads the provider's userinfo endpoint, which needs `openid`
        f"{prefix}_SCOPE": "openid",
        **overrides,
    }


async def through(auth: AuthApp, name: str, login: str) -> Any:
    client = browser(auth)
    authorize = await start(client, f"/oauth/{name}")
    params = query(authorize)
    assert params["code_challenge_method"] == "S256" and params["state"]
    assert params["redirect_uri"] == f"{PORTAL}/oauth/{name}/callback"
    return await client.get(await callback_url(client, login, authorize, f"{PORTAL}/oauth/{name}/callback"))


@pytest.mark.parametrize("name", PRESETS)
async def test_preset_sign_in_links_the_numeric_id(
    app_factory: Callable[..., Any], stack: Stack, name: str
) -> None:
    async with app_factory(**preset_env(stack, name)) as auth:
        config = (await auth.client.get("/api/config")).json()
        assert config[f"{name}LoginEnabled"] is True and config["socialLogins"] == [name]
        assert f'href="/oauth/{name}?portal=1"' in (await auth.client.get("/portal/login")).text
        for _ in range(2):  # first sign-in, then the returning user
            response = await through(auth, name, "alice")
            assert response.status_code == 302 and response.headers["location"] == CLIENT_APP
        users = [doc async for doc in auth.collection("users").find({})]
        assert len(users) == 1
        user = users[0]
        assert user["provider"] == name and user[f"{name}Id"] == str(stack[1].ids["sub-alice"])
        assert user["email"] == "alice@idp.example.com"
        # verified: GitHub's primary address, Discord's `verified`; Facebook never
        assert user["emailVerifiedBy"] == ("unverified" if name == "facebook" else "provider")


@pytest.mark.parametrize(
    ("name", "login", "linked"),
    [
        ("github", "alice", True),
        ("github", "unverified", False),
        ("discord", "alice", True),
        ("discord", "unverified", False),
        ("facebook", "alice", False),
    ],
)
async def test_auto_link_follows_each_providers_verified_rule(
    app_factory: Callable[..., Any], stack: Stack, name: str, login: str, linked: bool
) -> None:
    async with app_factory(**preset_env(stack, name, SOCIAL_AUTO_LINK_VERIFIED="true")) as auth:
        address = f"{login}@idp.example.com"
        await auth.register(address)
        await auth.collection("users").update_many(
            {}, {"$set": {"emailVerified": True, "emailVerifiedBy": "mail"}}
        )
        response = await through(auth, name, login)
        if linked:
            assert response.headers["location"] == CLIENT_APP
        else:
            assert failure_code(response) == "link_required"
        user = await auth.find_user(address)
        assert user is not None and (f"{name}Id" in user) is linked


async def test_a_code_the_provider_refuses_fails(app_factory: Callable[..., Any], stack: Stack) -> None:
    async with app_factory(**preset_env(stack, "github")) as auth:
        client = browser(auth)
        state = query(await start(client, "/oauth/github"))["state"]
        bad_code = await client.get(
            f"{PORTAL}/oauth/github/callback", params={"code": "not-a-code", "state": state}
        )
        assert failure_code(bad_code) == "auth_failed"
        assert await auth.collection("users").count_documents({}) == 0
