"""What the two-factor tests share: enrolling over the API and codes of a chosen step."""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.auth.api_helpers import email
from tests.auth.conftest import STRONG_PASSWORD, AuthApp

STEP = 30


def librechat_secret() -> str:
    """LibreChat's `generateTOTPSecret`: 10 random bytes in base32 (16 characters)."""
    return base64.b32encode(os.urandom(10)).decode()


def encrypt_v3(value: str, creds_key: str) -> str:
    """LibreChat's `encryptV3`: AES-256-CTR, a random 16-byte IV, `v3:<iv hex>:<data hex>`."""
    iv = os.urandom(16)
    encryptor = Cipher(algorithms.AES(bytes.fromhex(creds_key)), modes.CTR(iv)).encryptor()
    data = encryptor.update(value.encode()) + encryptor.finalize()
    return f"v3:{iv.hex()}:{data.hex()}"


class ShortSecretTotp(pyotp.TOTP):
    min_secret_length_bits = 80  # LibreChat's secrets have 80 bits


def code(secret: str, offset: int = 0) -> str:
    """The code of the current step plus `offset` (±1 is inside the accepted drift)."""
    return ShortSecretTotp(secret).at(time.time() + offset * STEP)


def secret_of(otpauth_url: str) -> str:
    return parse_qs(urlsplit(otpauth_url).query)["secret"][0]


@dataclass
class Enrolled:
    address: str
    user_id: str
    token: str
    secret: str
    backup_codes: list[str]


async def call(
    auth: AuthApp, path: str, token: str | None, body: dict[str, Any] | None = None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await auth.client.post(f"/api/auth/2fa/{path}", json=body or {}, headers=headers)


async def enrolled(auth: AuthApp) -> Enrolled:
    """A new user with 2FA on, confirmed with the previous step's code (the current and next
    ones stay usable for the test)."""
    address = email()
    body = await auth.user(address)
    enabled = await call(auth, "enable", body["token"], {"password": STRONG_PASSWORD})
    assert enabled.status_code == 200, enabled.text
    secret = secret_of(enabled.json()["otpauthUrl"])
    confirmed = await call(auth, "confirm", body["token"], {"token": code(secret, -1)})
    assert confirmed.status_code == 200, confirmed.text
    return Enrolled(address, body["user"]["id"], body["token"], secret, enabled.json()["backupCodes"])


async def temp_token(auth: AuthApp, address: str, password: str = STRONG_PASSWORD) -> str:
    response = await auth.login(address, password)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["twoFAPending"] is True and set(body) == {"twoFAPending", "tempToken"}, body
    assert not response.headers.get_list("set-cookie")
    token: str = body["tempToken"]
    return token


async def verify_temp(auth: AuthApp, temp: str, **proof: str) -> httpx.Response:
    return await auth.client.post("/api/auth/2fa/verify-temp", json={"tempToken": temp, **proof})


async def session_count(auth: AuthApp, user_id: str) -> int:
    count: int = await auth.collection("auth_sessions").count_documents({"user_id": user_id})
    return count


__all__ = ["STRONG_PASSWORD"]
