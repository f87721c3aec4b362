"""A provider sign-in waiting for the portal's second-factor step, sealed into a cookie.

The portal's 2FA form only knows a temp token; this says the sign-in behind it came from a
provider, so the session it finally starts is the one the callback would have started: the
`fed` method, the provider's `sid`/`sub` kept for back-channel logout, LibreChat's refresh
cookie, the portal's session cookie only when the flow began at the portal, and the way back
(`rd` or DOMAIN_CLIENT). Sealed like the flow (AES-256-GCM, the flow key, its own associated
data) and bound to the temp token by its digest: it cannot ride on another sign-in's token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from dataclasses import asdict, dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.crypto import b64url_decode, b64url_encode

PENDING_MAX_AGE_S = 300  # the temp token's own lifetime
MAX_COOKIE_CHARS = 4000
_AAD = b"authgate-oauth-2fa-v1"


def temp_digest(temp_token: str) -> str:
    return hashlib.sha256(temp_token.encode()).hexdigest()


@dataclass(frozen=True)
class PendingSignIn:
    user_id: str
    provider: str
    issuer: str
    subject: str
    sid: str  # "" when the provider sent none
    portal: bool  # begun at the portal: its session cookie too
    after: str  # where the browser goes once signed in
    temp_digest: str  # sha256 of the temp token it belongs to
    issued_at: int = 0


class PendingSealer:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, pending: PendingSignIn) -> str:
        nonce = os.urandom(12)
        data = json.dumps(asdict(pending), separators=(",", ":")).encode()
        return b64url_encode(nonce + self._aead.encrypt(nonce, data, _AAD))

    def open(
        self, sealed: str | None, temp_token: str, user_id: str, now: float | None = None
    ) -> PendingSignIn | None:
        """The pending sign-in of this temp token and user, when intact and fresh; else None
        (the 2FA step then ends as the portal's own sign-in does)."""
        if not sealed or len(sealed) > MAX_COOKIE_CHARS:
            return None
        try:
            raw = b64url_decode(sealed)
            pending = PendingSignIn(**json.loads(self._aead.decrypt(raw[:12], raw[12:], _AAD)))
        except (InvalidTag, ValueError, TypeError):
            return None
        age = (now if now is not None else time.time()) - pending.issued_at
        if not -60 <= age <= PENDING_MAX_AGE_S:
            return None
        if not hmac.compare_digest(pending.temp_digest, temp_digest(temp_token)):
            return None
        return pending if pending.user_id == user_id else None
