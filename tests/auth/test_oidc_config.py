"""OPENID_* at startup: a half-configured provider names the missing variable; the flow key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from services.auth.settings import AuthSettings
from shared.config import ConfigError

BASE = {"DOMAIN_SERVER": "https://auth.example.com", "ALLOW_SOCIAL_LOGIN": "true"}
FULL = {
    **BASE,
    "OPENID_CLIENT_ID": "authgate",
    "OPENID_CLIENT_SECRET": "s" * 32,
    "OPENID_ISSUER": "https://sso.example.com/realms/acme",
}


@pytest.mark.parametrize(
    ("missing", "extra"),
    [
        ("OPENID_CLIENT_ID", {}),
        ("OPENID_ISSUER", {}),
        ("OPENID_CLIENT_SECRET", {}),
        ("DOMAIN_SERVER", {}),
    ],
)
def test_half_configured_provider_names_the_missing_variable(
    settings_factory: Callable[..., AuthSettings], missing: str, extra: dict[str, str]
) -> None:
    env = {**FULL, **extra, missing: ""}
    with pytest.raises(ConfigError) as raised:
        settings_factory(**env)
    assert raised.value.name == missing


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"OPENID_REQUIRED_ROLE": "chat-user"}, "OPENID_REQUIRED_ROLE_PARAMETER_PATH"),
        ({"OPENID_ADMIN_ROLE": "chat-admin"}, "OPENID_ADMIN_ROLE_PARAMETER_PATH"),
        (
            {
                "OPENID_REQUIRED_ROLE": "x",
                "OPENID_REQUIRED_ROLE_PARAMETER_PATH": "roles",
                "OPENID_REQUIRED_ROLE_TOKEN_KIND": "jwt",
            },
            "OPENID_REQUIRED_ROLE_TOKEN_KIND",
        ),
        ({"OPENID_ISSUER": "http://sso.example.com"}, "OPENID_ISSUER"),
        ({"OPENID_CALLBACK_URL": "/elsewhere"}, "OPENID_CALLBACK_URL"),
        ({"SOCIAL_LOGINS": "openid,myspace"}, "SOCIAL_LOGINS"),
        ({"OPENID_CLOCK_TOLERANCE": "soon"}, "OPENID_CLOCK_TOLERANCE"),
        ({"GOOGLE_CLIENT_ID": "g"}, "GOOGLE_CLIENT_SECRET"),
        ({"GITHUB_CLIENT_SECRET": "g" * 24}, "GITHUB_CLIENT_ID"),
        ({"DISCORD_CLIENT_ID": "d"}, "DISCORD_CLIENT_SECRET"),
        ({"FACEBOOK_CLIENT_SECRET": "f" * 24}, "FACEBOOK_CLIENT_ID"),
        (
            {"FACEBOOK_CLIENT_ID": "f", "FACEBOOK_CLIENT_SECRET": "s", "FACEBOOK_CALLBACK_URL": "/x"},
            "FACEBOOK_CALLBACK_URL",
        ),
        (
            {"GITHUB_CLIENT_ID": "g", "GITHUB_CLIENT_SECRET": "s", "GITHUB_TOKEN_URL": "ftp://x"},
            "GITHUB_TOKEN_URL",
        ),
        ({"GOOGLE_CLIENT_SECRET": "g" * 24}, "GOOGLE_CLIENT_ID"),
        (
            {"GOOGLE_CLIENT_ID": "g", "GOOGLE_CLIENT_SECRET": "g", "GOOGLE_ISSUER": "http://x.test"},
            "GOOGLE_ISSUER",
        ),
    ],
)
def test_invalid_openid_values_stop_startup(
    settings_factory: Callable[..., AuthSettings], env: dict[str, str], name: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_factory(**{**FULL, **env})
    assert raised.value.name == name


def test_defaults_and_a_public_client(settings_factory: Callable[..., AuthSettings]) -> None:
    settings = settings_factory(**{**FULL, "OPENID_CLIENT_SECRET": "", "OPENID_USE_PKCE": "true"})
    openid = settings.social.openid
    assert openid is not None and openid.client_secret is None
    assert openid.clock_tolerance_s == 60 and openid.scope == "openid profile email"
    assert settings.social.social_logins == ("openid",)
    assert settings_factory(**BASE).social.openid is None


def test_the_flow_key_comes_from_openid_session_secret(settings_factory: Callable[..., AuthSettings]) -> None:
    derived = settings_factory(**FULL).social.flow_key
    own = settings_factory(**FULL, OPENID_SESSION_SECRET="o" * 40).social.flow_key
    assert len(derived) == len(own) == 32 and derived != own


def test_github_enterprise_moves_every_endpoint(settings_factory: Callable[..., AuthSettings]) -> None:
    env = {**BASE, "GITHUB_CLIENT_ID": "g", "GITHUB_CLIENT_SECRET": "s" * 24}
    github = settings_factory(**env).social.github
    assert github is not None and github.authorize_url == "https://github.com/login/oauth/authorize"
    assert github.api_url == "https://api.github.com" and github.scope == "user:email"
    enterprise = settings_factory(**env, GITHUB_ENTERPRISE_BASE_URL="https://git.acme.example/").social.github
    assert enterprise is not None
    assert enterprise.authorize_url == "https://git.acme.example/login/oauth/authorize"
    assert enterprise.token_url == "https://git.acme.example/login/oauth/access_token"
    assert enterprise.api_url == "https://git.acme.example/api/v3"


async def test_registration_allowed_domains_applies_to_password_registration(
    app_factory: Callable[..., Any],
) -> None:
    async with app_factory(REGISTRATION_ALLOWED_DOMAINS="acme.example, @Corp.Example") as auth:
        refused = await auth.register("someone@elsewhere.example")
        assert refused.status_code == 403 and refused.json()["code"] == "email_domain_not_allowed"
        assert await auth.find_user("someone@elsewhere.example") is None
        assert (await auth.register("someone@acme.example")).status_code == 200
        assert (await auth.register("other@corp.example")).status_code == 200
