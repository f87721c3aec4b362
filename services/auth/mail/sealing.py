"""Outbox bodies are sealed (AES-GCM): a mail holds a live token until it is sent.

The key is derived from JWT_REFRESH_SECRET (HKDF, info "mail-outbox"), so a copy of the
database alone reads no link; the entry's id is the associated data, so a sealed body cannot
be moved to another entry.
"""

from __future__ import annotations

import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.crypto import derive_key

NONCE_BYTES = 12


class Unreadable(Exception):
    """A sealed body that this key cannot open (another secret, or tampered with)."""


class BodySealer:
    def __init__(self, secret: str) -> None:
        self._aead = AESGCM(derive_key(secret, b"mail-outbox"))

    def seal(self, entry_id: str, text: str, html: str | None) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        plain = json.dumps({"text": text, "html": html}).encode()
        return nonce + self._aead.encrypt(nonce, plain, entry_id.encode())

    def open(self, entry_id: str, sealed: bytes) -> tuple[str, str | None]:
        try:
            plain = self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], entry_id.encode())
        except (InvalidTag, ValueError) as exc:
            raise Unreadable(entry_id) from exc
        body = json.loads(plain)
        return str(body["text"]), body.get("html")
