"""Single-use tokens for e-mail verification and password reset.

256 random bits; only their SHA-256 is stored (a hash that cannot be reversed is enough for a
value no one can guess, and it keeps the store's copy useless); used once, removed atomically
on use; the expiry is checked here, not left to a TTL index; a new token of a kind ends the
user's older ones.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from services.auth.store import OneTimeTokenRepository

VERIFY_EMAIL = "verify_email"
PASSWORD_RESET = "password_reset"
MAX_TOKEN_CHARS = 128


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: dt.datetime


class OneTimeTokens:
    def __init__(self, store: OneTimeTokenRepository, clock: Callable[[], dt.datetime] = _utcnow) -> None:
        self._store = store
        self._clock = clock

    async def issue(self, kind: str, user_id: str, lifetime: dt.timedelta) -> IssuedToken:
        token = secrets.token_urlsafe(32)
        now = self._clock()
        await self._store.replace(kind, user_id, token_hash(token), now + lifetime, now)
        return IssuedToken(token, now + lifetime)

    async def issued_recently(self, kind: str, user_id: str, within: dt.timedelta) -> bool:
        """A token of this kind went to this user less than `within` ago (one mail per cooldown)."""
        return await self._store.issued_since(kind, user_id, self._clock() - within)

    async def use(self, kind: str, token: str, user_id: str | None = None) -> str | None:
        """The user id the token was for, once; None when it is unknown, used, expired or another's."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            return None
        found = await self._store.consume(kind, token_hash(token), user_id)
        if found is None:
            return None
        expires = found.get("expires_at")
        if not isinstance(expires, dt.datetime) or expires <= self._clock():
            return None
        return str(found["user_id"])
