"""What the auth API tests share: field sets, hostile payloads and answer checks."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

TOKEN_FIELDS = {"token", "user"}
USER_FIELDS = {
    "_id",
    "id",
    "email",
    "username",
    "name",
    "role",
    "provider",
    "emailVerified",
    "avatar",
    "createdAt",
    "updatedAt",
    "twoFactorEnabled",
}
CONFIG_FIELDS = {
    "emailLoginEnabled",
    "registrationEnabled",
    "socialLoginEnabled",
    "socialRegistrationEnabled",
    "passwordResetEnabled",
    "emailEnabled",
    "minPasswordLength",
}
SESSION_FIELDS = {"id", "created", "last_used", "expires", "ip", "user_agent", "current"}
OPERATORS: list[Any] = [
    {"$gt": ""},
    {"$ne": None},
    {"$regex": ".*"},
    {"$where": "1"},
    ["a@example.com"],
    [],
    42,
    0,
    1.5,
    None,
    True,
    False,
]


def email() -> str:
    return f"user-{secrets.token_hex(4)}@example.com"


def refresh_cookie(response: httpx.Response, path: str = "/api/auth") -> dict[str, str]:
    """The refreshToken Set-Cookie header for `path` parsed into its attributes (flags as present/absent)."""
    headers = [
        h
        for h in response.headers.get_list("set-cookie")
        if h.startswith("refreshToken=")
        and f"path={path.lower()}" in [p.strip().lower() for p in h.split(";")]
    ]
    assert len(headers) == 1, response.headers.get_list("set-cookie")
    parts = [p.strip() for p in headers[0].split(";")]
    name_value = parts[0].split("=", 1)
    attributes = {"value": name_value[1]}
    for part in parts[1:]:
        key, _, value = part.partition("=")
        attributes[key.lower()] = value or "<flag>"
    return attributes


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


def no_hash_anywhere(text: str) -> None:
    assert "$argon2" not in text
    assert "$2b$" not in text
    assert "$2a$" not in text
    assert '"password"' not in text
