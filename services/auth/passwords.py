"""Password hashing (argon2id, LibreChat's bcrypt upgraded on login) and the password policy.

Hashing runs in a small bounded thread pool: argon2 releases the GIL, so two
threads use two cores, and the event loop keeps serving while a hash runs. A
queue bound sheds load with 503 instead of letting memory grow (checklist 69).
"""

from __future__ import annotations

import asyncio
import secrets
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import bcrypt
import zxcvbn
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from services.auth.blocklist import is_common
from services.auth.breach import BreachCheck
from services.auth.settings import Argon2Params
from shared.errors import DomainError, ErrorCode

MAX_PASSWORD_CHARS = 128
MAX_PASSWORD_BYTES = 1024
BCRYPT_MAX_BYTES = 72
T = TypeVar("T")
ZXCVBN_MAX_CHARS = 72  # zxcvbn refuses longer input; a longer password is judged on its prefix


def normalize(password: str) -> str:
    """NFKC, the one transform applied to every password on every path."""
    return unicodedata.normalize("NFKC", password)


def within_size_cap(password: str) -> bool:
    return len(password) <= MAX_PASSWORD_CHARS and len(password.encode("utf-8")) <= MAX_PASSWORD_BYTES


def is_bcrypt(stored: str) -> bool:
    return stored.startswith(("$2a$", "$2b$", "$2y$"))


@dataclass(frozen=True)
class PolicyViolation:
    rule: str
    message: str


class PasswordPolicy:
    """Length in code points, a size cap, zxcvbn strength with context words, a common-password
    blocklist and an optional breach range check; no composition rules."""

    def __init__(self, min_length: int, min_strength: int, breach_check: BreachCheck | None = None) -> None:
        self.min_length = min_length
        self.min_strength = min_strength
        self.breach_check = breach_check

    def check(self, password: str, context: list[str]) -> PolicyViolation | None:
        if not within_size_cap(password):
            return PolicyViolation(
                "too_long", f"Password must be at most {MAX_PASSWORD_CHARS} characters and 1 KiB."
            )
        if len(password) < self.min_length:
            return PolicyViolation("too_short", f"Password must be at least {self.min_length} characters.")
        if password.strip() == "":
            return PolicyViolation("too_weak", "Password must not be only white space.")
        words = _context_words(context)
        result = zxcvbn.zxcvbn(password[:ZXCVBN_MAX_CHARS], user_inputs=words)
        if int(result["score"]) < self.min_strength:
            feedback = result.get("feedback") or {}
            hint = feedback.get("warning") or " ".join(feedback.get("suggestions") or [])
            message = "Password is too easy to guess"
            if any(w and w.lower() in password.lower() for w in words if len(w) >= 4):
                message += "; it contains your email, name or username"
            return PolicyViolation("too_weak", f"{message}. {hint}".strip())
        if is_common(password):
            return PolicyViolation(
                "common", "Password is on a list of commonly used passwords; choose another."
            )
        if self.breach_check is not None and self.breach_check.is_breached(password):
            return PolicyViolation("breached", "Password appears in known data breaches; choose another.")
        return None


def _context_words(context: list[str]) -> list[str]:
    words: list[str] = []
    for item in context:
        if not item:
            continue
        words.append(item)
        if "@" in item:
            local, _, domain = item.partition("@")
            words.extend([local, domain.split(".")[0]])
        words.extend(part for part in item.replace(".", " ").replace("_", " ").split() if len(part) > 2)
    return list(dict.fromkeys(w for w in words if w))


class Hasher:
    """argon2id hashing/verification off the event loop, with legacy bcrypt support."""

    def __init__(self, params: Argon2Params, threads: int = 2, max_queue: int = 64) -> None:
        self._argon2 = PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="argon2")
        self._slots = asyncio.Semaphore(threads + max_queue)
        self._dummy_hash = self._argon2.hash(secrets.token_urlsafe(24))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if self._slots.locked():
            raise DomainError(
                ErrorCode.OVERLOADED, "Too many password checks in progress; retry.", retry_after=1
            )
        async with self._slots:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, fn, *args)

    async def hash(self, password: str) -> str:
        """Hash an already-normalized password."""
        return await self._run(self._argon2.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """Verify `password` (raw, as received) against `stored`; unknown users hit a dummy hash."""
        if stored is None or not isinstance(stored, str) or not stored:
            await self._run(self._verify_argon2, self._dummy_hash, normalize(password))
            return False
        if is_bcrypt(stored):
            return await self._run(self._verify_bcrypt, stored, password)
        return await self._run(self._verify_argon2, stored, normalize(password))

    def needs_rehash(self, stored: str) -> bool:
        if is_bcrypt(stored):
            return True
        try:
            return self._argon2.check_needs_rehash(stored)
        except InvalidHashError:
            return True

    def _verify_argon2(self, stored: str, password: str) -> bool:
        try:
            return self._argon2.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    @staticmethod
    def _verify_bcrypt(stored: str, password: str) -> bool:
        """bcryptjs compared the first 72 bytes of the raw password; so do we, for old hashes only."""
        candidate = password.encode("utf-8")[:BCRYPT_MAX_BYTES]
        try:
            return bcrypt.checkpw(candidate, stored.replace("$2y$", "$2b$", 1).encode())
        except ValueError:
            return False
