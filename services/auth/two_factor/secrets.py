"""TOTP secrets sealed at rest (AES-GCM) under a dedicated, versioned key.

Each key is derived (HKDF) from a configured `TOTP_ENCRYPTION_KEY`; its id is stored with the
ciphertext, so the key can be rotated: the old one moves to `TOTP_ENCRYPTION_KEYS_OLD`, keeps
decrypting, and `authgate reencrypt-totp` moves every secret to the new one. The user id is the
associated data, so a sealed secret copied onto another account does not open.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.crypto import b64url_decode, b64url_encode, derive_key

NONCE_BYTES = 12
FORMAT = "ag1"  # authgate's sealed-secret format: ag1:<key id>:<b64url(nonce || ciphertext)>


class UnreadableSecret(Exception):
    """A sealed secret no configured key opens (unknown key id, other user, or tampered with)."""


def key_id(secret: str) -> str:
    """A short public name for a key: a hash of a derived value, never of the key itself."""
    return hashlib.sha256(derive_key(secret, b"authgate totp key id")).hexdigest()[:12]


@dataclass(frozen=True)
class Sealed:
    kid: str
    text: str


class SecretSealer:
    """Seals with the current key; opens with it or any of the old ones."""

    def __init__(self, current: str, old: Sequence[str] = ()) -> None:
        self.current_kid = key_id(current)
        self._keys = {key_id(k): AESGCM(derive_key(k, b"authgate totp secret")) for k in (*old, current)}

    def seal(self, user_id: str, secret: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.current_kid].encrypt(nonce, secret.encode(), user_id.encode())
        return f"{FORMAT}:{self.current_kid}:{b64url_encode(nonce + sealed)}"

    def open(self, user_id: str, stored: str) -> str:
        parts = stored.split(":") if isinstance(stored, str) else []
        if len(parts) != 3 or parts[0] != FORMAT or parts[1] not in self._keys:
            raise UnreadableSecret("unknown format or key id")
        try:
            raw = b64url_decode(parts[2])
            plain = self._keys[parts[1]].decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], user_id.encode())
        except (InvalidTag, ValueError) as exc:
            raise UnreadableSecret("does not open") from exc
        return plain.decode()

    def is_current(self, stored: str) -> bool:
        return isinstance(stored, str) and stored.startswith(f"{FORMAT}:{self.current_kid}:")
