"""What the sign-in routes need of any provider, OpenID Connect or plain OAuth2."""

from __future__ import annotations

from typing import Protocol

from services.auth.social.flow import Flow
from services.auth.social.oauth2 import PRESETS
from services.auth.social.oidc import OpenIdProvider, SignedInIdentity
from services.auth.social.settings import OpenIdSettings


class SignInProvider(Protocol):
    settings: OpenIdSettings

    async def authorization_url(self, flow: Flow) -> str: ...
    async def finish(self, flow: Flow, code: str, returned_issuer: str | None) -> SignedInIdentity: ...
    async def end_session_url(self) -> str | None: ...
    async def aclose(self) -> None: ...


def build_provider(settings: OpenIdSettings, server: str) -> SignInProvider:
    """GitHub, Discord and Facebook speak OAuth2 and their APIs; every other one OpenID Connect."""
    redirect_uri = server.rstrip("/") + settings.callback_path
    preset = PRESETS.get(settings.name)
    if preset is not None:
        return preset(settings, redirect_uri)
    return OpenIdProvider(settings, redirect_uri)
