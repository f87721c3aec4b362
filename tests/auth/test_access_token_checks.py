"""With JWT_SECRET as the only key, /verify parses a token once; every header check still holds."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import jwt
import pytest

from services.auth.keys import KeyRing
from services.auth.tokens import AccessTokens, InvalidToken

SECRET = secrets.token_bytes(64)
TOKENS = AccessTokens(KeyRing("HS256", SECRET), "authgate", "librechat", 900_000)


def claims() -> dict[str, Any]:
    now = int(time.time())
    return {
        "sub": "u1",
        "sid": "s1",
        "jti": "j1",
        "iat": now,
        "exp": now + 600,
        "iss": "authgate",
        "aud": "librechat",
    }


def signed(headers: dict[str, Any], algorithm: str = "HS256", key: bytes = SECRET) -> str:
    return jwt.encode(claims(), key, algorithm=algorithm, headers=headers)


def forged(header: dict[str, Any]) -> str:
    """HS256 over any header PyJWT's encoder would refuse to write (a null or numeric kid)."""
    parts = [base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=") for part in (header, claims())]
    mac = hmac.new(SECRET, b".".join(parts), hashlib.sha256).digest()
    return b".".join([*parts, base64.urlsafe_b64encode(mac).rstrip(b"=")]).decode()


def test_a_valid_token_passes_with_or_without_the_hs256_kid() -> None:
    assert TOKENS.verify(signed({"typ": "at+jwt"})).user_id == "u1"
    assert TOKENS.verify(signed({"typ": "at+jwt", "kid": "hs256"})).user_id == "u1"
    assert TOKENS.verify(signed({"typ": "application/at+jwt"})).user_id == "u1"


@pytest.mark.parametrize(
    "token",
    [
        signed({"typ": "JWT"}),
        signed({}),
        signed({"typ": "at+jwt", "kid": "other"}),
        forged({"alg": "HS256", "typ": "at+jwt", "kid": 7}),
        forged({"alg": "HS256", "typ": "at+jwt", "kid": None}),  # PyJWT refuses a non-string kid
        forged({"alg": "HS512", "typ": "at+jwt"}),
        signed({"typ": "at+jwt"}, "HS384"),
        signed({"typ": "at+jwt"}, key=secrets.token_bytes(64)),
        jwt.encode(claims(), None, algorithm="none", headers={"typ": "at+jwt"}),  # type: ignore[arg-type]
    ],
)
def test_every_header_check_still_refuses(token: str) -> None:
    with pytest.raises(InvalidToken):
        TOKENS.verify(token)
