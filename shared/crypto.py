"""Key derivation and URL-safe base64: one implementation both services use.

Every purpose-specific key (refresh-token children, device cookies, account
subjects) is derived from one configured secret with HKDF and its own `info`
label, so leaking one derived key reveals neither the secret nor its siblings.
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def derive_key(secret: str, info: bytes) -> bytes:
    """A 32-byte key for one purpose (`info`) from a configured secret."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret.encode())


def b64url_encode(data: bytes) -> str:
    """Unpadded URL-safe base64, as JWTs and cookies spell it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """Inverse of `b64url_encode`; raises `binascii.Error`/`ValueError` on bad input."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
