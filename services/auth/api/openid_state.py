"""The app's OpenID provider clients, and what logout needs of them (no import of the sign-in routes)."""

from __future__ import annotations

from starlette.requests import Request

from services.auth.api.common import ctx
from services.auth.social.oidc import OpenIdProvider
from services.auth.social.providers import SignInProvider


def provider_named(request: Request, name: str) -> SignInProvider | None:
    """The configured provider called `name` (`openid`, `google`, `github`), or None."""
    providers: dict[str, SignInProvider] = getattr(request.app.state, "providers", {})
    return providers.get(name)


def openid_provider(request: Request) -> OpenIdProvider | None:
    found = provider_named(request, "openid")
    return found if isinstance(found, OpenIdProvider) else None


async def end_session_redirect(request: Request, user_id: str) -> str | None:
    """With OPENID_USE_END_SESSION_ENDPOINT, the provider's end-session URL for an OpenID user
    (LibreChat's `redirect` in the logout answer: `client_id` and `post_logout_redirect_uri`)."""
    provider = openid_provider(request)
    if provider is None or not provider.settings.use_end_session_endpoint:
        return None
    user = await ctx(request).accounts.find_by_id(user_id)
    if user is None or not user.get("openidId"):
        return None
    return await provider.end_session_url()
