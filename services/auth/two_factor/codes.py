"""TOTP (RFC 6238: SHA-1, 6 digits, 30 s, as LibreChat and every authenticator app) with replay
protection: the caller stores the time step a code was accepted for and refuses that step and
every earlier one afterwards, so a code works at most once."""

from __future__ import annotations

import binascii
import hmac
import time
from collections.abc import Callable

import pyotp

STEP_SECONDS = 30
DRIFT_STEPS = 1


def new_secret() -> str:
    """160 random bits in base32 (RFC 4226's recommended length; LibreChat uses 80)."""
    return pyotp.random_base32(length=32)


def otpauth_url(secret: str, email: str, app_title: str) -> str:
    """LibreChat's URL: the issuer is APP_TITLE without whitespace, the label issuer:email."""
    issuer = "".join(app_title.split())
    return f"otpauth://totp/{issuer}:{email}?secret={secret}&issuer={issuer}"


def looks_like_code(code: str) -> bool:
    return len(code) == 6 and code.isascii() and code.isdigit()


class _LegacyLengthTotp(pyotp.TOTP):
    """pyotp refuses secrets under 112 bits; LibreChat's enrolments have 80 (new ones here 160)."""

    min_secret_length_bits = 80


class Totp:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def current_step(self) -> int:
        return int(self._clock() // STEP_SECONDS)

    def matching_step(self, secret: str, code: str, after_step: int | None = None) -> int | None:
        """The step (within ±1 of now, after `after_step`) whose code `code` is, compared in
        constant time; None when there is none."""
        if not looks_like_code(code):
            return None
        try:
            totp = _LegacyLengthTotp(secret)
        except (ValueError, binascii.Error):  # not base32, or under 80 bits: no code matches
            return None
        now = self.current_step()
        found: int | None = None
        for step in range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1):
            expected = totp.generate_otp(step)
            if hmac.compare_digest(expected.encode(), code.encode()) and found is None:
                found = step
        if found is None or (after_step is not None and found <= after_step):
            return None
        return found
