"""What the session and token tests share: token segments, unsigned tokens, revocation records."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

from tests.auth.conftest import AuthApp

ACCESS_CLAIMS = {
    "sub",
    "ep",  # the user's session epoch: tokens from before an all-sessions revocation are refused
    "id",
    "username",
    "provider",
    "email",
    "role",
    "sid",
    "jti",
    "iat",
    "exp",
    "iss",
    "aud",
}


def email() -> str:
    return f"user-{secrets.token_hex(4)}@example.com"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(header + "==")),
        json.loads(base64.urlsafe_b64decode(payload + "==")),
        signature,
    )


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: str = "") -> str:
    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), signature])


async def user_status(auth: AuthApp, token: str) -> int:
    return (await auth.get("/api/user", token)).status_code


async def revocations(auth: AuthApp, **query: Any) -> list[dict[str, Any]]:
    return [doc async for doc in auth.collection("auth_revocations").find(query)]
