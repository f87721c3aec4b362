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
        "required, existing passkeys excluded); the challenge is single use and expires in 5 minutes",
        {200: w.CreationOptions, 400: E, 401: E, 403: E, 404: E, 413: E, 415: E, 422: E, 503: E},
        body=w.EmptyRequest,
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
        "Revoke the current session",
        {200: s.MessageResponse, 400: E, 401: E, 403: E, 413: E, 415: E, 422: E, 429: E, 503: E},
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
    return doc


async def openapi(request: Request) -> Response:
    return JSONResponse(document())
