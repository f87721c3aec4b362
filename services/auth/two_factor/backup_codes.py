"""Backup codes: 10 codes of 64 random bits each, stored as HMAC-SHA256 under a per-user salt.

LibreChat's codes (8 hex characters, unsalted SHA-256) are guessable from a stolen database;
these are not. The plain codes are shown once, at enrolment or regeneration, never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

CODE_COUNT = 10
CODE_BYTES = 8  # 64 bits
SALT_BYTES = 16
MAX_CODE_CHARS = 64


def normalized(code: str) -> str:
    """Spaces and dashes a user types are ignored; hex is case-insensitive."""
    return "".join(code.split()).replace("-", "").lower()


def code_hash(salt: str, code: str) -> str:
    return hmac.new(bytes.fromhex(salt), normalized(code).encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class NewCodes:
    plain: list[str]
    salt: str
    hashes: list[str]


def generate(count: int = CODE_COUNT) -> NewCodes:
    salt = secrets.token_hex(SALT_BYTES)
    plain = [secrets.token_hex(CODE_BYTES) for _ in range(count)]
    return NewCodes(plain, salt, [code_hash(salt, code) for code in plain])


def plausible(code: str) -> bool:
    return 0 < len(code) <= MAX_CODE_CHARS and code.isascii()
