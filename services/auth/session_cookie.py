"""The portal's session cookie: a short-lived signed token bound to an ordinary session.

Why its own token type and key: a cookie is sent by the browser on its own, a bearer token
is presented on purpose. Keeping them apart (a separate HKDF key from JWT_SECRET and the
`typ` `authgate-session+jwt`) means a stolen cookie is never a bearer token and an access
token pasted into a cookie is never a session. The token expires after a refresh interval
(the portal re-issues it, touching the session, so the idle timeout is honoured) and never
after the session's absolute expiry; /verify checks it without any network call.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt

from services.auth.tokens import JWT_CODEC, LEEWAY_SECONDS, MAX_TOKEN_BYTES, AccessClaims, InvalidToken
from shared.crypto import derive_key

SESSION_COOKIE_TYPE = "authgate-session+jwt"
_AUDIENCE_SUFFIX = ":session-cookie"
_REQUIRED = ["exp", "iat", "iss", "aud", "sub", "sid", "jti", "amr", "sexp"]
AMR_PASSWORD = "pwd"
AMR_OTP = "otp"
AMR_HARDWARE_KEY = "hwk"  # a passkey with user verification: possession and PIN or biometrics
# Methods that satisfy `?mfa=required`: a second factor, or a passkey (two factors in one).
MULTI_FACTOR_AMR = frozenset({AMR_OTP, AMR_HARDWARE_KEY})


@dataclass(frozen=True)
class CookieClaims:
    """The access-token view /verify already knows, plus how the user signed in."""

    access: AccessClaims
    amr: tuple[str, ...]
    session_expires_at: int


class SessionCookieTokens:
    """HS256 with a key of its own; `lifetime_s` is the refresh interval, capped by the session."""

    def __init__(self, secret: str, issuer: str, lifetime_s: int) -> None:
        self._key = derive_key(secret, b"authgate-session-cookie")
        self._issuer = issuer
        self._audience = issuer + _AUDIENCE_SUFFIX
        self.lifetime_s = max(1, lifetime_s)

    def issue(
        self,
        *,
        user_id: str,
        session_id: str,
        email: str,
        username: str,
        role: str,
        epoch: int,
        amr: tuple[str, ...],
        session_expires_at: int,
    ) -> str:
        now = int(time.time())
        payload = {
            "sub": user_id,
            "sid": session_id,
            "email": email,
            "username": username,
            "role": role,
            "ep": epoch,
            "amr": list(amr),
            "sexp": session_expires_at,
            "jti": secrets.token_urlsafe(12),
            "iat": now,
            "exp": min(now + self.lifetime_s, session_expires_at),
            "iss": self._issuer,
            "aud": self._audience,
        }
        return JWT_CODEC.encode(payload, self._key, algorithm="HS256", headers={"typ": SESSION_COOKIE_TYPE})

    def verify(self, token: str, *, expired_ok: bool = False) -> CookieClaims:
        """The claims of a cookie token; `expired_ok` lets the portal renew one past its interval
        (never past the session's absolute expiry, which is checked here either way)."""
        if not token or len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
            raise InvalidToken("malformed")
        try:
            decoded = JWT_CODEC.decode_complete(
                token,
                self._key,
                algorithms=["HS256"],
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": _REQUIRED, "strict_aud": True, "verify_exp": not expired_ok},
            )
        except jwt.PyJWTError:
            raise InvalidToken("signature or claims") from None
        if decoded["header"].get("typ") != SESSION_COOKIE_TYPE:
            raise InvalidToken("wrong typ")
        return _claims(decoded["payload"])


def _claims(payload: dict[str, Any]) -> CookieClaims:
    try:
        amr = payload["amr"]
        if not isinstance(amr, list) or not all(isinstance(m, str) for m in amr):
            raise TypeError("amr")
        numbers = [payload[name] for name in ("exp", "iat", "sexp", "ep")]
        if any(isinstance(n, bool) or not isinstance(n, int) for n in numbers):
            raise TypeError("numbers")
        if payload["sexp"] + LEEWAY_SECONDS < time.time():
            raise InvalidToken("session expired")
        strings = [payload[name] for name in ("sub", "sid", "jti", "email", "username", "role")]
        if not all(isinstance(s, str) for s in strings):
            raise TypeError("strings")
        access = AccessClaims(
            user_id=payload["sub"],
            session_id=payload["sid"],
            email=payload["email"],
            username=payload["username"],
            role=payload["role"],
            provider="local",
            jti=payload["jti"],
            issued_at=payload["iat"],
            expires_at=payload["exp"],
            epoch=payload["ep"],
        )
    except (KeyError, TypeError):
        raise InvalidToken("claim types") from None
    return CookieClaims(access, tuple(amr), int(payload["sexp"]))
