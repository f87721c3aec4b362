"""What a test user is made of: one strong password that every policy accepts."""

from __future__ import annotations

STRONG_PASSWORD = "correct horse battery staple zebra"


def registration(email: str, password: str = STRONG_PASSWORD, name: str = "Test User") -> dict[str, str]:
    """A register body with matching passwords."""
    return {"name": name, "email": email, "password": password, "confirm_password": password}
