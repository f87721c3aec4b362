"""GET /openapi.json for the auth service, generated from the request/response models."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.auth import schemas as s
from services.auth.passkeys import schemas as w
from shared.openapi import Operation, build_openapi

E = s.ErrorResponse
BEARER = ["bearer"]
# 403 `banned`: IpBanMiddleware answers it on every route but the probes and public documents;
# logout answers it itself unless the caller presents an access token that verifies.

_CHANGE = {400: E, 401: E, 403: E, 413: E, 415: E, 422: E, 503: E}
_RD = {"name": "rd", "in": "query", "required": False, "schema": {"type": "string"}}
# A provider flow's start (`rd`, `portal`) and its callback's query (what the provider sends back).
_START = [_RD, {"name": "portal", "in": "query", "required": False, "schema": {"type": "string"}}]
_CALLBACK = [
    {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
    for name in ("code", "state", "iss", "error")
]
OPENID = [
    Operation(
        "/oauth/openid",
        "GET",
        "Start OpenID Connect sign-in: 302 to the provider with state, nonce and PKCE S256; the flow "
        "is sealed in a 10-minute HttpOnly cookie of its own (named by a digest of its state, so flows "
        "begun in several tabs all finish; at most three live at once). `rd` (checked against "
        "AUTH_REDIRECT_DOMAINS) is "
        "where the browser goes after the sign-in; `portal=1` also sets the portal's session cookie. "
        "Refusals (social_login_disabled, banned, rate_limited) redirect to "
        "DOMAIN_CLIENT/login?redirect=false&error=<code>, or answer JSON for Accept: application/json",
        {302: None, 403: E, 404: E, 429: E, 503: E},
        parameters=_START,
        headers={302: ["Location", "Set-Cookie"]},
    ),
    Operation(
        "/oauth/openid/callback",
        "GET",
        "The provider's redirect back: the flow cookie must match `state`, be under 10 minutes old and "
        "unused; the code is exchanged and the ID token verified (issuer, audience, signature through "
        "the JWKS, nonce, expiry). Success: the refresh cookie (and the portal's session cookie for a "
        "portal flow) and 302 to `rd` or DOMAIN_CLIENT, or to /portal/2fa when a second factor is "
        "enrolled (passing it there starts this same session: LibreChat's refresh cookie and "
        "DOMAIN_CLIENT for a flow begun at LibreChat's button). Failure: 302 to "
        "DOMAIN_CLIENT/login?redirect=false&error=<code> (auth_failed, "
        "social_registration_disabled, email_domain_not_allowed, role_required, link_required, banned)",
        {302: None, 401: E, 403: E, 404: E, 409: E, 429: E, 503: E},
        parameters=_CALLBACK,
        headers={302: ["Location", "Set-Cookie"]},
    ),
    Operation(
        "/oauth/openid/backchannel-logout",
        "POST",
        "OIDC Back-Channel Logout: the provider's logout token (verified like an ID token, with the "
        "back-channel logout event, `jti` and `exp`) revokes the sessions it names by `sid`, or every "
        "session of `sub`; the same token again is 400 logout_token_replayed (its `jti` is remembered "
        "until `exp` plus the clock tolerance)",
        {200: None, 400: E, 404: E, 413: E, 415: E},
        form=s.BackchannelLogoutRequest,
    ),
    Operation(
        "/oauth/google",
        "GET",
        "Start Google sign-in (LibreChat's preset, as OpenID Connect; GOOGLE_ISSUER overrides the "
        "issuer): as /oauth/openid",
        {302: None, 403: E, 404: E, 429: E, 503: E},
        parameters=_START,
        headers={302: ["Location", "Set-Cookie"]},
    ),
    Operation(
        "/oauth/google/callback",
        "GET",
        "Google's redirect back: as /oauth/openid/callback (the link is `googleId`)",
        {302: None, 401: E, 403: E, 404: E, 409: E, 429: E, 503: E},
        parameters=_CALLBACK,
        headers={302: ["Location", "Set-Cookie"]},
    ),
    Operation(
        "/oauth/github",
        "GET",
        "Start GitHub sign-in (LibreChat's preset, OAuth2 with state and PKCE S256): as /oauth/openid",
        {302: None, 403: E, 404: E, 429: E, 503: E},
        parameters=_START,
        headers={302: ["Location", "Set-Cookie"]},
    ),
    Operation(
        "/oauth/github/callback",
        "GET",
        "GitHub's redirect back: the code is exchanged, the identity read from its /user (the numeric "
        "id, `githubId`) and /user/emails (the verified primary address); refusals as /oauth/openid/callback",
        {302: None, 401: E, 403: E, 404: E, 409: E, 429: E, 503: E},
        parameters=[
            {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
            for name in ("code", "state", "error")
        ],
        headers={302: ["Location", "Set-Cookie"]},
    ),
]
OPENID += [
    operation
    for name, label, shape in (
        ("discord", "Discord", "its /users/@me (the id, `discordId`; `verified` marks the address)"),
        ("facebook", "Facebook", "its Graph /me (the id, `facebookId`; the address is never verified)"),
    )
    for operation in (
        Operation(
            f"/oauth/{name}",
            "GET",
            f"Start {label} sign-in (LibreChat's preset, OAuth2 with state and PKCE S256): as /oauth/openid",
            {302: None, 403: E, 404: E, 429: E, 503: E},
            parameters=[
                _RD,
                {"name": "portal", "in": "query", "required": False, "schema": {"type": "string"}},
            ],
            headers={302: ["Location", "Set-Cookie"]},
        ),
        Operation(
            f"/oauth/{name}/callback",
            "GET",
            f"{label}'s redirect back: the code is exchanged and the identity read from {shape}",
            {302: None, 401: E, 403: E, 404: E, 409: E, 429: E, 503: E},
            parameters=[
                {"name": param, "in": "query", "required": False, "schema": {"type": "string"}}
                for param in ("code", "state", "error")
            ],
            headers={302: ["Location", "Set-Cookie"]},
        ),
    )
]
# A browser flow's refusals are a portal page when the flow began there (or DOMAIN_CLIENT is unset).
BROWSER_FLOWS = tuple(
    path
    for name in ("openid", "google", "github", "discord", "facebook")
    for path in (f"/oauth/{name}", f"/oauth/{name}/callback")
)
TWO_FACTOR = [
    Operation(
        "/api/auth/2fa/enable",
        "POST",
        "Start (or redo) 2FA enrolment: a pending secret and 10 backup codes; an account with 2FA "
        "already sends its password and a current code",
        {200: s.TwoFactorEnrolment, 429: E, **_CHANGE},
        body=s.TwoFactorChangeRequest,
        headers={429: ["Retry-After"]},
        security=BEARER,
    ),
    Operation(
        "/api/auth/2fa/enable",
        "GET",
        "Start 2FA enrolment (older LibreChat clients; no body, so only without 2FA)",
        {200: s.TwoFactorEnrolment, 400: E, 401: E, 403: E, 503: E},
        security=BEARER,
    ),
    Operation(
        "/api/auth/2fa/confirm",
        "POST",
        "Turn the pending enrolment on with a code from the new authenticator (and the password "
        "when the enrolment was started without it)",
        {200: s.MessageResponse, 429: E, **_CHANGE},
        body=s.TwoFactorConfirmRequest,
        security=BEARER,
        headers={429: ["Retry-After"]},
    ),
    Operation(
        "/api/auth/2fa/verify",
        "POST",
        "Check a TOTP or backup code (either is spent; limited like the login's second step)",
        {200: s.MessageResponse, 429: E, **_CHANGE},
        body=s.TwoFactorProofRequest,
        security=BEARER,
        headers={429: ["Retry-After"]},
    ),
    Operation(
        "/api/auth/2fa/disable",
        "POST",
        "Turn 2FA off: the current password and a TOTP or backup code",
        {200: s.MessageResponse, 429: E, **_CHANGE},
        body=s.TwoFactorChangeRequest,
        headers={429: ["Retry-After"]},
        security=BEARER,
    ),
    Operation(
        "/api/auth/2fa/backup/regenerate",
        "POST",
        "Replace the backup codes: the current password and a TOTP or backup code",
        {200: s.BackupCodesResponse, 429: E, **_CHANGE},
        body=s.TwoFactorChangeRequest,
        headers={429: ["Retry-After"]},
        security=BEARER,
    ),
    Operation(
        "/api/auth/2fa/verify-temp",
        "POST",
        "The login's second step: the temp token and a code give the normal login answer",
        {200: s.TokenResponse, 429: E, **_CHANGE},
        body=s.TwoFactorTempRequest,
        headers={429: ["Retry-After"]},
    ),
]

# 404 `passkeys_disabled` on every passkey route when no relying party is configured.
_PASSKEY_ID = [{"name": "passkey_id", "in": "path", "required": True, "schema": {"type": "string"}}]
WEBAUTHN = [
    Operation(
        "/api/auth/webauthn/register/options",
        "POST",
        "Creation options for a new passkey of the caller (discoverable, user verification "
        "required, existing passkeys excluded); the challenge is single use and expires in 5 minutes. "
        "An account with a password sends it (`password`): a passkey outlives a password change, so "
        "a stolen access token is not enough; wrong or missing: 401 invalid_credentials, counted as "
        "a failed login",
        {200: w.CreationOptions, 400: E, 401: E, 403: E, 404: E, 413: E, 415: E, 422: E, 429: E, 503: E},
        body=w.RegisterOptionsRequest,
        security=BEARER,
    ),
    Operation(
        "/api/auth/webauthn/register/verify",
        "POST",
        "Verify navigator.credentials.create()'s answer to those options and store the passkey",
        {201: w.PasskeyRegistered, 400: E, 401: E, 403: E, 404: E, 413: E, 415: E, 422: E, 503: E},
        body=w.RegisterVerifyRequest,
        security=BEARER,
    ),
    Operation(
        "/api/auth/webauthn/login/options",
        "POST",
        "Request options for a passkey sign-in (empty allowCredentials, user verification required); "
        "counts as a login attempt for moderation",
        {200: w.RequestOptions, 400: E, 403: E, 404: E, 413: E, 415: E, 422: E, 429: E, 503: E},
        body=w.EmptyRequest,
        headers={429: ["Retry-After"]},
    ),
    Operation(
        "/api/auth/webauthn/login/verify",
        "POST",
        "Verify navigator.credentials.get()'s answer: a session as after /api/auth/login (amr hwk), "
        "no password and no second factor",
        {200: s.TokenResponse, 400: E, 401: E, 403: E, 404: E, 413: E, 415: E, 422: E, 429: E, 503: E},
        body=w.LoginVerifyRequest,
        headers={429: ["Retry-After"]},
    ),
    Operation(
        "/api/auth/webauthn/credentials",
        "GET",
        "The caller's passkeys",
        {200: w.PasskeyList, 400: E, 401: E, 403: E, 404: E, 503: E},
        security=BEARER,
    ),
    Operation(
        "/api/auth/webauthn/credentials/{passkey_id}",
        "PATCH",
        "Rename one of the caller's passkeys",
        {200: s.MessageResponse, 400: E, 401: E, 403: E, 404: E, 413: E, 415: E, 422: E, 503: E},
        body=w.RenameRequest,
        security=BEARER,
        parameters=_PASSKEY_ID,
    ),
    Operation(
        "/api/auth/webauthn/credentials/{passkey_id}",
        "DELETE",
        "Remove one of the caller's passkeys; 409 `last_sign_in_method` when the account would be "
        "left without a password or another passkey",
        {200: s.MessageResponse, 400: E, 401: E, 403: E, 404: E, 409: E, 503: E},
        security=BEARER,
        parameters=_PASSKEY_ID,
    ),
]

OPERATIONS = [
    Operation(
        "/api/auth/register",
        "POST",
        "Register a local account",
        {200: s.MessageResponse, 400: E, 403: E, 409: E, 413: E, 415: E, 422: E, 429: E, 503: E},
        body=s.RegisterRequest,
    ),
    Operation(
        "/api/auth/login",
        "POST",
        "Log in with email and password",
        {200: s.LoginResponse, 400: E, 401: E, 403: E, 413: E, 415: E, 422: E, 429: E, 503: E},
        body=s.LoginRequest,
    ),
    Operation(
        "/api/auth/refresh",
        "POST",
        "Rotate the refresh token (cookie or body) and get a new access token",
        {200: s.TokenResponse, 400: E, 401: E, 403: E, 413: E, 415: E, 422: E, 429: E, 503: E},
        body=s.RefreshRequest,
    ),
    Operation(
        "/api/auth/logout",
        "POST",
        "Revoke the current session; `redirect` is the OpenID provider's end-session URL for an "
        "OpenID user when OPENID_USE_END_SESSION_ENDPOINT is true",
        {200: s.LogoutResponse, 400: E, 401: E, 403: E, 413: E, 415: E, 422: E, 429: E, 503: E},
        body=s.LogoutRequest,
        security=BEARER,
    ),
    Operation(
        "/api/auth/requestPasswordReset",
        "POST",
        "Mail a password reset link (the same answer for every address; never a link in the answer)",
        {200: s.MessageResponse, 400: E, 403: E, 413: E, 415: E, 422: E, 429: E, 503: E},
        body=s.EmailRequest,
    ),
    Operation(
        "/api/auth/resetPassword",
        "POST",
        "Set a new password with the token from the reset mail; ends every session",
        {200: s.MessageResponse, 400: E, 403: E, 413: E, 415: E, 422: E, 429: E, 503: E},
        body=s.ResetPasswordRequest,
    ),
    *TWO_FACTOR,
    *WEBAUTHN,
    Operation(
        "/api/auth/password",
        "POST",
        "Change the caller's password (the current one first); ends every other session",
        {200: s.RevokedResponse, 400: E, 401: E, 403: E, 413: E, 415: E, 422: E, 429: E, 503: E},
        body=s.ChangePasswordRequest,
        security=BEARER,
    ),
    Operation(
        "/api/auth/sessions",
        "GET",
        "List the caller's sessions",
        {200: s.SessionList, 400: E, 401: E, 403: E, 503: E},
        security=BEARER,
    ),
    Operation(
        "/api/auth/sessions",
        "DELETE",
        "Revoke every session but the current one",
        {200: s.RevokedResponse, 400: E, 401: E, 403: E, 503: E},
        security=BEARER,
    ),
    Operation(
        "/api/auth/sessions/{session_id}",
        "DELETE",
        "Revoke one of the caller's sessions",
        {200: s.RevokedResponse, 400: E, 401: E, 403: E, 404: E, 503: E},
        security=BEARER,
        parameters=[{"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}],
    ),
    Operation(
        "/api/user",
        "GET",
        "The authenticated user",
        {200: s.UserOut, 400: E, 401: E, 403: E, 503: E},
        security=BEARER,
    ),
    Operation("/api/config", "GET", "Public login configuration", {200: s.ConfigResponse, 403: E}),
    Operation(
        "/api/user/verify",
        "POST",
        "Verify an email address with the token from its mail",
        {200: s.StatusMessageResponse, 400: E, 403: E, 413: E, 415: E, 422: E, 429: E, 503: E},
        body=s.VerifyEmailRequest,
    ),
    Operation(
        "/api/user/verify/resend",
        "POST",
        "Mail a new verification link (the same answer for every address)",
        {200: s.StatusMessageResponse, 400: E, 403: E, 413: E, 415: E, 422: E, 429: E, 503: E},
        body=s.EmailRequest,
    ),
    Operation("/.well-known/jwks.json", "GET", "Public signing keys (empty in HS256 mode)", {200: s.Jwks}),
    Operation(
        "/api/auth/introspect",
        "POST",
        "RFC 7662 token introspection for internal services (service key, scope introspect)",
        {200: s.IntrospectResponse, 400: E, 401: E, 403: E, 413: E, 415: E, 503: E},
        form=s.IntrospectRequest,
        security=["service_key"],
    ),
    *OPENID,
    Operation("/healthz", "GET", "Liveness", {200: s.HealthResponse}),
    Operation("/readyz", "GET", "Readiness", {200: s.HealthResponse, 503: s.HealthResponse}),
]


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    doc = build_openapi(
        "authgate auth service",
        "0.1.0",
        OPERATIONS,
        E,
        {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            "service_key": {"type": "http", "scheme": "bearer", "description": "AUTH_SERVICE_KEYS secret"},
        },
    )
    # The session list is a bare JSON array, as LibreChat-style clients expect.
    doc["paths"]["/api/auth/sessions"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] = {
        "type": "array",
        "items": {"$ref": "#/components/schemas/SessionOut"},
    }
    doc["components"]["schemas"]["SessionOut"] = s.SessionOut.model_json_schema()
    for path in BROWSER_FLOWS:
        for entry in doc["paths"][path]["get"]["responses"].values():
            if "content" in entry:
                entry["content"]["text/html"] = {"schema": {"type": "string"}}
    return doc


async def openapi(request: Request) -> Response:
    return JSONResponse(document())
