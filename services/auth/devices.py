"""The `authgate_device` cookie: proof that this browser logged in to an account before.

It widens the account owner's door under a credential-stuffing attack (failures
from a trusted device count against LOGIN_DEVICE_MAX, not LOGIN_ACCOUNT_MAX); it
never removes it. The cookie is HMAC-signed with a key derived from
JWT_REFRESH_SECRET (HKDF, info "device"), bound to the account's HMAC, expires
with REFRESH_TOKEN_EXPIRY, and carries a per-user epoch that password reset and
`revoke-sessions` bump, so old cookies die.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from services.auth.store import UserState, UserStateRepository
from shared.crypto import b64url_decode, b64url_encode, derive_key

DEVICE_COOKIE = "authgate_device"
MAX_COOKIE_BYTES = 512


@dataclass(frozen=True)
class DeviceClaim:
    user_id: str
    account: str
    epoch: int
    expires_at: int


class DeviceCookies:
    def __init__(
        self,
        refresh_secret: str,
        lifetime_ms: int,
        user_state: UserStateRepository,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = derive_key(refresh_secret, b"device")
        self._lifetime = max(1, lifetime_ms // 1000)
        self._user_state = user_state
        self.clock = clock  # wall-clock seconds: expiry is an instant in the cookie

    @property
    def max_age(self) -> int:
        return self._lifetime

    def issue(self, user_id: str, account: str, epoch: int) -> str:
        payload = json.dumps(
            {"u": user_id, "a": account, "e": epoch, "x": int(self.clock()) + self._lifetime},
            separators=(",", ":"),
        ).encode()
        mac = hmac.new(self._key, payload, hashlib.sha256).digest()
        return f"{b64url_encode(payload)}.{b64url_encode(mac)}"

    def parse(self, value: str | None, account: str) -> DeviceClaim | None:
        """A valid, unexpired cookie for this account; None for anything else."""
        if not value or len(value) > MAX_COOKIE_BYTES or value.count(".") != 1:
            return None
        encoded, signature = value.split(".")
        try:
            payload = b64url_decode(encoded)
            mac = b64url_decode(signature)
        except ValueError:
            return None
        if not hmac.compare_digest(mac, hmac.new(self._key, payload, hashlib.sha256).digest()):
            return None
        try:
            data = json.loads(payload)
            claim = DeviceClaim(str(data["u"]), str(data["a"]), int(data["e"]), int(data["x"]))
        except (ValueError, KeyError, TypeError):
            return None
        if claim.expires_at < self.clock() or not hmac.compare_digest(claim.account, account):
            return None
        return claim

    async def epoch(self, user_id: str) -> int:
        return (await self._user_state.get(user_id)).device_epoch

    async def bump_epoch(self, user_id: str) -> None:
        """Invalidate every device cookie of this user (password reset, revoke-sessions)."""
        await self._user_state.bump_device_epoch(user_id)

    async def trusted(self, value: str | None, account: str) -> DeviceClaim | None:
        found = await self.check(value, account)
        return None if found is None else found[0]

    async def check(self, value: str | None, account: str) -> tuple[DeviceClaim, UserState] | None:
        """A trusted cookie's claim with the user's state as read to judge it (login reuses it)."""
        claim = self.parse(value, account)
        if claim is None:
            return None
        state = await self._user_state.get(claim.user_id)
        return (claim, state) if claim.epoch == state.device_epoch else None
