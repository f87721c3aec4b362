"""GitHub sign-in (LibreChat's preset): OAuth2 with state and PKCE S256, then its REST API.

GitHub is not an OpenID provider: there is no ID token to verify, so the identity is what
`GET /user` answers for the access token the code was exchanged for (over TLS, from the
configured endpoints only). The subject is GitHub's numeric user id (`githubId`), never the
login name, which users can change. An address counts as verified only when `GET /user/emails`
marks the primary address `verified: true`.
"""

from __future__ import annotations

from typing import Any

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from services.auth.social.flow import Flow
from services.auth.social.oidc import HTTP_TIMEOUT_S, ProviderRefused, SignedInIdentity, exchange_code, log
from services.auth.social.settings import OpenIdSettings

API_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}


class GitHubProvider:
    def __init__(
        self, settings: OpenIdSettings, redirect_uri: str, http: httpx.AsyncClient | None = None
    ) -> None:
        self.settings = settings
        self.redirect_uri = redirect_uri
        self._http = http or httpx.AsyncClient(timeout=HTTP_TIMEOUT_S, follow_redirects=False)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def authorization_url(self, flow: Flow) -> str:
        """`state` (LibreChat's GitHub strategy sends none) and PKCE S256 (GitHub supports it)."""
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
        headers = {**API_HEADERS, "Authorization": f"Bearer {token['access_token']}"}
        user = await self._get(settings.api_url + "/user", headers)
        emails = await self._get(settings.api_url + "/user/emails", headers)
        user_id = user.get("id") if isinstance(user, dict) else None
        if not isinstance(user_id, int) or isinstance(user_id, bool):
            raise ProviderRefused("github_user")
        primary = (
            next(
                (
                    e
                    for e in emails
                    if isinstance(e, dict) and e.get("primary") is True and isinstance(e.get("email"), str)
                ),
                None,
            )
            if isinstance(emails, list)
            else None
        )
        email = primary["email"] if primary else user.get("email")
        profile: dict[str, Any] = {
            "sub": str(user_id),
            "email": email if isinstance(email, str) else None,
            "email_verified": bool(primary and primary.get("verified") is True),
            "preferred_username": user.get("login") if isinstance(user.get("login"), str) else None,
            "name": user.get("name") if isinstance(user.get("name"), str) else None,
        }
        return SignedInIdentity(settings.issuer, str(user_id), {}, profile, {}, "")

    async def _get(self, url: str, headers: dict[str, str]) -> Any:
        try:
            response = await self._http.get(url, headers=headers)
            body = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            body = None
        if body is None:
            log.warning("github_api_unavailable", url=url)
            raise ProviderRefused("github_api")
        return body

    async def end_session_url(self) -> str | None:
        return None
