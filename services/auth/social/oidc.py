"""The OpenID provider as seen from here: discovery, the authorization URL, the code exchange,
and the verification of its ID tokens and logout tokens.

Authlib builds the authorization request and the token request (RFC 6749 parameters, the PKCE
S256 challenge); the code is exchanged with the service's own httpx client (client secret by
HTTP Basic, or none for a public client); joserfc, Authlib's JOSE library, verifies the tokens
against the provider's JWKS with an allow-list of asymmetric algorithms, so `alg: none` and
HMAC-signed tokens (which a client secret known to both sides could forge) are refused before
any claim is read.
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import structlog
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from services.auth.social.flow import Flow
from services.auth.social.settings import OpenIdSettings
from shared.errors import DomainError, ErrorCode

log = structlog.get_logger("authgate.social")

ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
METADATA_TTL_S = 3600
JWKS_MIN_REFRESH_S = 60  # an unknown `kid` refetches the keys at most once a minute
HTTP_TIMEOUT_S = 10.0
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
MAX_JTI_CHARS = 256


class ProviderRefused(DomainError):
    """The provider, or what it sent, failed a check; `reason` is logged, never shown."""

    def __init__(self, reason: str) -> None:
        super().__init__(ErrorCode.AUTH_FAILED, "The sign-in could not be completed. Start again.")
        self.reason = reason


@dataclass(frozen=True)
class LogoutToken:
    """What a verified back-channel logout token names, and until when its `jti` is remembered
    (its expiry plus the clock tolerance: later, the token itself is refused as expired)."""

    sub: str | None
    sid: str | None
    jti: str
    remember_until: dt.datetime


def _remember_until(claims: dict[str, Any], tolerance_s: int) -> dt.datetime:
    exp = claims.get("exp")
    seconds = float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else time.time()
    return dt.datetime.fromtimestamp(seconds + tolerance_s + 1, dt.UTC)


@dataclass(frozen=True)
class SignedInIdentity:
    """What the provider asserted, after every check."""

    issuer: str
    subject: str
    id_claims: dict[str, Any]
    userinfo: dict[str, Any]
    access_claims: dict[str, Any]
    id_token: str


async def exchange_code(
    http: httpx.AsyncClient,
    settings: OpenIdSettings,
    redirect_uri: str,
    endpoint: str,
    code: str,
    verifier: str,
    *,
    secret_in_body: bool = False,
) -> dict[str, Any]:
    """RFC 6749 §4.1.3 with the PKCE verifier; the client secret by HTTP Basic (or in the body
    for providers that want it there), none for a public client. The token answer, or refused."""
    body = prepare_token_request(
        "authorization_code", code=code, redirect_uri=redirect_uri, code_verifier=verifier
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    if settings.client_secret and not secret_in_body:  # RFC 6749 §2.3.1: both parts form-encoded
        pair = f"{quote(settings.client_id, safe='')}:{quote(settings.client_secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    else:
        extra = {"client_id": settings.client_id}
        if settings.client_secret:
            extra["client_secret"] = settings.client_secret
        body += "&" + urlencode(extra)
    try:
        response = await http.post(endpoint, content=body, headers=headers)
        token = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        token = None
    if not isinstance(token, dict) or not isinstance(token.get("access_token"), str):
        log.info("token_exchange_failed", provider=settings.name)
        raise ProviderRefused("token_exchange")
    return token


class OpenIdProvider:
    def __init__(
        self, settings: OpenIdSettings, redirect_uri: str, http: httpx.AsyncClient | None = None
    ) -> None:
        self.settings = settings
        self.redirect_uri = redirect_uri
        self._http = http or httpx.AsyncClient(timeout=HTTP_TIMEOUT_S, follow_redirects=False)
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0

    async def aclose(self) -> None:
        await self._http.aclose()

    # Discovery and keys -------------------------------------------------------------------

    async def metadata(self) -> dict[str, Any]:
        now = time.monotonic()
        if self._metadata is not None and now - self._metadata_at < METADATA_TTL_S:
            return self._metadata
        url = self.settings.issuer + "/.well-known/openid-configuration"
        document = await self._get_json(url, "discovery")
        # OpenID Connect Discovery 1.0 §4.3: the document must name exactly the configured issuer.
        if document.get("issuer", "").rstrip("/") != self.settings.issuer:
            raise ProviderRefused("discovery_issuer_mismatch")
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(document.get(name), str):
                raise ProviderRefused(f"discovery_missing_{name}")
        self._metadata, self._metadata_at = document, now
        return document

    async def _get_json(self, url: str, what: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._http.get(url, **kwargs)
            body = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            body = None
        if not isinstance(body, dict):
            log.warning("openid_provider_unreachable", what=what)
            raise ProviderRefused(f"{what}_unavailable")
        return body

    async def _key_set(self, refresh: bool = False) -> KeySet:
        now = time.monotonic()
        if self._keys is not None and not (refresh and now - self._keys_at >= JWKS_MIN_REFRESH_S):
            return self._keys
        document = await self._get_json(str((await self.metadata())["jwks_uri"]), "jwks")
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError):
            raise ProviderRefused("jwks_invalid") from None
        self._keys, self._keys_at = keys, now
        return keys

    async def _verified(self, token: str) -> dict[str, Any]:
        """Signature (asymmetric, from the JWKS; refetched once for an unknown key) and payload."""
        for attempt in (False, True):
            keys = await self._key_set(refresh=attempt)
            try:
                decoded = jwt.decode(token, keys, algorithms=list(ASYMMETRIC_ALGORITHMS))
            except JoseError:
                if attempt:
                    raise ProviderRefused("token_signature") from None
                continue  # perhaps a rotated key: the set is refetched (at most once a minute)
            except (ValueError, TypeError):
                raise ProviderRefused("token_malformed") from None
            return dict(decoded.claims)
        raise ProviderRefused("token_signature")

    def _check_claims(self, claims: dict[str, Any], *, require_sub: bool = True, **expected: Any) -> None:
        """`iss`, `iat` (and `sub`) present, `exp`/`nbf`/`iat` within the clock tolerance, and
        every `expected` claim present with that value (`None`: present, any value)."""
        options: dict[str, Any] = {
            "iss": {"essential": True, "value": self.settings.issuer},
            "iat": {"essential": True},
        }
        if require_sub:
            options["sub"] = {"essential": True}
        for name, value in expected.items():
            options[name] = {"essential": True, "value": value}
        registry = jwt.JWTClaimsRegistry(leeway=self.settings.clock_tolerance_s, **options)
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise ProviderRefused(f"claim_{getattr(exc, 'claim', 'invalid')}") from None

    # The flow ---------------------------------------------------------------------------------

    async def authorization_url(self, flow: Flow) -> str:
        """State, nonce and a PKCE S256 challenge on every request, whatever the variables say."""
        settings = self.settings
        endpoint = str((await self.metadata())["authorization_endpoint"])
        return str(
            prepare_grant_uri(
                endpoint,
                settings.client_id,
                "code",
                redirect_uri=self.redirect_uri,
                scope=settings.scope,
                state=flow.state,
                nonce=flow.nonce,
                code_challenge=create_s256_code_challenge(flow.code_verifier),
                code_challenge_method="S256",
            )
        )

    async def _exchange(self, endpoint: str, code: str, verifier: str) -> dict[str, Any]:
        return await exchange_code(self._http, self.settings, self.redirect_uri, endpoint, code, verifier)

    async def finish(self, flow: Flow, code: str, returned_issuer: str | None) -> SignedInIdentity:
        """Exchange the code and verify everything the provider answered."""
        metadata = await self.metadata()
        # RFC 9207: a provider that names itself in the callback must name the configured issuer.
        if returned_issuer is not None and returned_issuer.rstrip("/") != self.settings.issuer:
            raise ProviderRefused("callback_issuer_mismatch")
        token = await self._exchange(str(metadata["token_endpoint"]), code, flow.code_verifier)
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise ProviderRefused("no_id_token")
        claims = await self._verified(id_token)
        self._check_claims(claims, aud=self.settings.client_id, nonce=flow.nonce, exp=None)
        audiences = claims.get("aud")
        if (
            isinstance(audiences, list)
            and len(audiences) > 1
            and claims.get("azp") != self.settings.client_id
        ):
            raise ProviderRefused("claim_azp")
        access_token = str(token.get("access_token") or "")
        userinfo = await self._userinfo(metadata, access_token, str(claims["sub"]))
        access_claims = await self._access_claims(access_token)
        return SignedInIdentity(
            self.settings.issuer, str(claims["sub"]), claims, userinfo, access_claims, id_token
        )

    async def _userinfo(self, metadata: dict[str, Any], access_token: str, subject: str) -> dict[str, Any]:
        endpoint = metadata.get("userinfo_endpoint")
        if not isinstance(endpoint, str) or not access_token:
            return {}
        info = await self._get_json(endpoint, "userinfo", headers={"Authorization": f"Bearer {access_token}"})
        if info.get("sub") != subject:  # OIDC Core §5.3.2: otherwise the answer must not be used
            raise ProviderRefused("userinfo_subject_mismatch")
        return info

    async def _access_claims(self, access_token: str) -> dict[str, Any]:
        """A JWT access token's claims once verified; an opaque one has none to read."""
        if access_token.count(".") != 2:
            return {}
        try:
            return await self._verified(access_token)
        except ProviderRefused:
            return {}

    # Logout -----------------------------------------------------------------------------------

    async def end_session_url(self) -> str | None:
        """The provider's end-session URL with LibreChat's parameters, or None without one."""
        try:
            endpoint = (await self.metadata()).get("end_session_endpoint")
        except ProviderRefused:
            return None
        if not isinstance(endpoint, str):
            return None
        params: dict[str, str] = {"client_id": self.settings.client_id}
        if self.settings.post_logout_redirect_uri:
            params["post_logout_redirect_uri"] = self.settings.post_logout_redirect_uri
        return str(httpx.URL(endpoint, params=params))

    async def verify_logout_token(self, token: str) -> LogoutToken:
        """A valid back-channel logout token (OIDC Back-Channel Logout §2.6): what it names, and
        its `jti` with how long it must be remembered to refuse a replay of it."""
        claims = await self._verified(token)
        # `exp` is required (Back-Channel Logout 1.0 final): a `jti` is remembered until then.
        self._check_claims(claims, require_sub=False, aud=self.settings.client_id, jti=None, exp=None)
        events = claims.get("events")
        if not isinstance(events, dict) or LOGOUT_EVENT not in events or "nonce" in claims:
            raise ProviderRefused("logout_token_events")
        sub, sid = claims.get("sub") or None, claims.get("sid") or None
        if sub is None and sid is None:
            raise ProviderRefused("logout_token_subject")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_CHARS:
            raise ProviderRefused("logout_token_jti")
        return LogoutToken(
            sub=str(sub) if sub else None,
            sid=str(sid) if sid else None,
            jti=jti,
            remember_until=_remember_until(claims, self.settings.clock_tolerance_s),
        )
