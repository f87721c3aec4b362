"""LibreChat's own TOTP secrets: `encryptV3` (AES-256-CTR under CREDS_KEY) and its older forms.

LibreChat stores `totpSecret` as `v3:<iv hex>:<ciphertext hex>` with CREDS_KEY (64 hex chars)
as the AES-256 key; older versions stored `<iv hex>:<ciphertext hex>` (AES-CBC, `encryptV2`) or
the plain 16-character base32 secret. Read only: authgate never writes this format.
"""

from __future__ import annotations

import binascii
import hashlib

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


class UndecryptableSecret(Exception):
    """CREDS_KEY is missing or wrong, or the stored value is not one of LibreChat's forms."""


def creds_key_bytes(creds_key: str) -> bytes:
    try:
        key = bytes.fromhex(creds_key)
    except ValueError:
        raise UndecryptableSecret("CREDS_KEY is not hex") from None
    if len(key) != 32:
        raise UndecryptableSecret("CREDS_KEY must be 32 bytes (64 hex characters)")
    return key


def decrypt_totp_secret(stored: str, creds_key: str | None) -> str:
    """The base32 secret from a LibreChat `totpSecret` value."""
    if ":" not in stored:
        return stored  # stored before LibreChat encrypted secrets
    if creds_key is None:
        raise UndecryptableSecret("CREDS_KEY is not set")
    key = creds_key_bytes(creds_key)
    parts = stored.split(":")
    try:
        if parts[0] == "v3":
            iv, data = bytes.fromhex(parts[1]), bytes.fromhex(":".join(parts[2:]))
            decryptor = Cipher(algorithms.AES(key), modes.CTR(iv)).decryptor()
            plain = decryptor.update(data) + decryptor.finalize()
        else:
            iv, data = bytes.fromhex(parts[0]), bytes.fromhex(":".join(parts[1:]))
            decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
            unpadder = padding.PKCS7(128).unpadder()
            plain = unpadder.update(decryptor.update(data) + decryptor.finalize()) + unpadder.finalize()
        secret = plain.decode()
    except (ValueError, IndexError, UnicodeDecodeError, binascii.Error):
        raise UndecryptableSecret("not a LibreChat secret under this CREDS_KEY") from None
    if not secret or not all(ch in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567=" for ch in secret.upper()):
        raise UndecryptableSecret("decrypted value is not base32: wrong CREDS_KEY")
    return secret


def librechat_code_hash(code: str) -> str:
    """LibreChat's backup-code hash: unsalted SHA-256 hex of the trimmed code."""
    return hashlib.sha256(code.strip().encode()).hexdigest()
