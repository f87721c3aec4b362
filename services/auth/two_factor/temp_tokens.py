"""The token between a correct password and the second factor: `tempToken`.

LibreChat signs `{userId, twoFAPending}` with JWT_SECRET, so its temp token is one key away from
an access token and can be replayed for five minutes. Here it is signed with its own derived key,
carries its own `typ` and audience (it never verifies as an access token, nor an access token as
it), is bound to its user, lives 5 minutes, and has a store record: at most 5 code attempts, and
it is consumed (deleted atomically) by the one that succeeds.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt

from services.auth.store import TempTokenRepository
from shared.crypto import derive_key

TEMP_TOKEN_TYPE = "2fa-temp+jwt"
TEMP_AUDIENCE = "authgate-2fa"
LIFETIME_SECONDS = 5 * 60
MAX_ATTEMPTS = 5
MAX_TOKEN_CHARS = 2048


class InvalidTempToken(Exception):
    """Bad signature, expired, used, dead after too many attempts, or another user's."""


@dataclass(frozen=True)
class TempClaims:
    user_id: str
    jti: str
    epoch: int  # the user's session epoch when the password was checked
    in_body: bool  # the login asked for its refresh token in the body (service clients)
    login_email: str


class TempTokens:
    def __init__(self, store: TempTokenRepository, secret: str, issuer: str) -> None:
        self._store = store
        self._key = derive_key(secret, b"authgate 2fa temp token")
        self._issuer = issuer

    async def issue(self, user_id: str, epoch: int, *, in_body: bool, login_email: str) -> str:
        now = int(time.time())
        jti = secrets.token_urlsafe(16)
        payload = {
            "sub": user_id,
            "jti": jti,
            "ep": epoch,
            "rb": in_body,
            "em": login_email,
            "iat": now,
            "exp": now + LIFETIME_SECONDS,
            "iss": self._issuer,
            "aud": TEMP_AUDIENCE,
        }
        expires = dt.datetime.fromtimestamp(now + LIFETIME_SECONDS, dt.UTC)
        await self._store.add(jti, user_id, expires)
        return jwt.encode(payload, self._key, algorithm="HS256", headers={"typ": TEMP_TOKEN_TYPE})

    def read(self, token: str) -> TempClaims:
        """The claims of a well-signed, unexpired temp token (the store is not consulted)."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            raise InvalidTempToken("malformed")
        try:
            header = jwt.get_unverified_header(token)
            payload: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                audience=TEMP_AUDIENCE,
                issuer=self._issuer,
                options={"require": ["exp", "iat", "sub", "jti", "aud", "iss"], "strict_aud": True},
            )
        except jwt.PyJWTError:
            raise InvalidTempToken("signature or claims") from None
        if header.get("typ") != TEMP_TOKEN_TYPE:
            raise InvalidTempToken("wrong typ")
        sub, jti, epoch = payload.get("sub"), payload.get("jti"), payload.get("ep", 0)
        if not isinstance(sub, str) or not isinstance(jti, str):
            raise InvalidTempToken("claim types")
        if isinstance(epoch, bool) or not isinstance(epoch, int):
            raise InvalidTempToken("claim types")
        return TempClaims(sub, jti, epoch, payload.get("rb") is True, str(payload.get("em") or ""))

    async def attempt(self, claims: TempClaims) -> None:
        """Count one code attempt; the sixth (or one on a used token) finds it dead."""
        if not await self._store.attempt(claims.jti, claims.user_id, MAX_ATTEMPTS):
            raise InvalidTempToken("used, expired or out of attempts")

    async def consume(self, claims: TempClaims) -> None:
        """Spend the token; of two concurrent successes only one gets here without an error."""
        if not await self._store.consume(claims.jti, claims.user_id):
            raise InvalidTempToken("already used")
