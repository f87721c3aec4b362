"""The OAuth2 presets (LibreChat's GitHub, Discord, Facebook): state and PKCE S256, then the
provider's own profile API.

These providers are not OpenID providers: there is no ID token to verify, so the identity is
what their API answers for the access token the code was exchanged for, asked at the configured
endpoints only. The subject is the provider's stable numeric id (`githubId`, `discordId`,
`facebookId`), never a login name users can change. "Verified" per provider: GitHub, the primary
address marked verified by `/user/emails`; Discord, `verified: true`; Facebook, never.
"""

from __future__ import annotations

from typing import Any

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from services.auth.social.flow import Flow
from services.auth.social.oidc import HTTP_TIMEOUT_S, ProviderRefused, SignedInIdentity, exchange_code, log
from services.auth.social.settings import OpenIdSettings

GITHUB_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class OAuth2Provider:
    """The flow; subclasses read the profile (`profile`) in their provider's shapes."""

    def __init__(
        self, settings: OpenIdSettings, redirect_uri: str, http: httpx.AsyncClient | None = None
    ) -> None:
        self.settings = settings
        self.redirect_uri = redirect_uri
        self._http = http or httpx.AsyncClient(timeout=HTTP_TIMEOUT_S, follow_redirects=False)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def authorization_url(self, flow: Flow) -> str:
        """`state` (LibreChat sends none for these presets) and a PKCE S256 challenge."""
        settings = self.settings
        return str(
            prepare_grant_uri(
                settings.authorize_url,
                settings.client_id,
                "code",
                redirect_uri=self.redirect_uri,
                scope=settings.scope,
                state=flow.state,
                code_challenge=create_s256_code_challenge(flow.code_verifier),
                code_challenge_method="S256",
            )
        )

    async def finish(self, flow: Flow, code: str, returned_issuer: str | None) -> SignedInIdentity:
        settings = self.settings
        token = await exchange_code(
            self._http,
            settings,
            self.redirect_uri,
            settings.token_url,
            code,
            flow.code_verifier,
            secret_in_body=True,
        )
        profile = await self.profile(str(token["access_token"]))
        subject = profile.get("sub")
        if not isinstance(subject, str) or not subject:
            raise ProviderRefused(f"{settings.name}_user")
        return SignedInIdentity(settings.issuer, subject, {}, profile, {}, "")

    async def profile(self, access_token: str) -> dict[str, Any]:
        """`sub`, `email`, `email_verified`, `preferred_username`, `name` from the provider's API."""
        raise NotImplementedError

    async def _get(self, url: str, access_token: str, headers: dict[str, str] | None = None) -> Any:
        merged = {"Accept": "application/json", **(headers or {}), "Authorization": f"Bearer {access_token}"}
        try:
            response = await self._http.get(url, headers=merged)
            body = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            body = None
        if body is None:
            log.warning("provider_api_unavailable", provider=self.settings.name)
            raise ProviderRefused(f"{self.settings.name}_api")
        return body

    async def end_session_url(self) -> str | None:
        return None


def _numeric_id(value: object) -> str | None:
    """GitHub's integer id, or Discord's and Facebook's numeric strings (snowflakes)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.isdigit():
        return value
    return None


class GitHubProvider(OAuth2Provider):
    async def profile(self, access_token: str) -> dict[str, Any]:
        api = self.settings.api_url
        user = await self._get(api + "/user", access_token, GITHUB_HEADERS)
        emails = await self._get(api + "/user/emails", access_token, GITHUB_HEADERS)
        if not isinstance(user, dict):
            raise ProviderRefused("github_user")
        listed = emails if isinstance(emails, list) else []
        primary = next(
            (e for e in listed if isinstance(e, dict) and e.get("primary") is True and _text(e.get("email"))),
            None,
        )
        return {
            "sub": _numeric_id(user.get("id")),
            "email": _text(primary["email"]) if primary else _text(user.get("email")),
            "email_verified": bool(primary and primary.get("verified") is True),
            "preferred_username": _text(user.get("login")),
            "name": _text(user.get("name")),
        }


class DiscordProvider(OAuth2Provider):
    async def profile(self, access_token: str) -> dict[str, Any]:
        user = await self._get(self.settings.api_url + "/users/@me", access_token)
        if not isinstance(user, dict):
            raise ProviderRefused("discord_user")
        return {
            "sub": _numeric_id(user.get("id")),
            "email": _text(user.get("email")),
            "email_verified": user.get("verified") is True,
            "preferred_username": _text(user.get("username")),
            "name": _text(user.get("global_name")) or _text(user.get("username")),
        }


class FacebookProvider(OAuth2Provider):
    async def profile(self, access_token: str) -> dict[str, Any]:
        user = await self._get(self.settings.api_url + "/me?fields=id,name,email", access_token)
        if not isinstance(user, dict):
            raise ProviderRefused("facebook_user")
        return {
            "sub": _numeric_id(user.get("id")),
            "email": _text(user.get("email")),
            "email_verified": False,  # Facebook asserts nothing about the address
            "preferred_username": None,
            "name": _text(user.get("name")),
        }


PRESETS: dict[str, type[OAuth2Provider]] = {
    "github": GitHubProvider,
    "discord": DiscordProvider,
    "facebook": FacebookProvider,
}
