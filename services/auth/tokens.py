"""Access tokens: short-lived JWTs that LibreChat's API can read (HS256 with JWT_SECRET).

Verification pins the algorithm list from configuration, requires `typ: at+jwt`
so no other JWT (a refresh or reset token of another system) passes as an access
token, and requires every claim the service relies on.
"""

from __future__ import annotations

import binascii
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import HMACAlgorithm
from jwt.api_jws import PyJWS

from services.auth.keys import HS256_KID, KeyRing

ACCESS_TOKEN_TYPE = "at+jwt"
ACCEPTED_TYPES = frozenset({ACCESS_TOKEN_TYPE, "application/at+jwt"})  # RFC 9068 §2.1 allows both
MAX_TOKEN_BYTES = 8 * 1024
LEEWAY_SECONDS = 30
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "sid", "jti"]


class InvalidToken(Exception):
    """Any reason a presented access token is not acceptable; the reason stays internal."""


_SEGMENT = re.compile(rb"[A-Za-z0-9_-]*")
_URLSAFE = bytes.maketrans(b"-_", b"+/")
# A last character that carries 4 (2) data bits must have its unused low bits zero: 2 (3) chars
# left over after whole 4-char groups. Any other last character is a non-canonical encoding.
_CANONICAL_LAST = {2: frozenset(b"AQgw"), 3: frozenset(b"AEIMQUYcgkosw048")}


def decode_segment(segment: bytes, name: str) -> bytes:
    """PyJWT's strict base64url segment check (same rules, same errors), with a C regex.

    PyJWT 2.15 tests every character of every segment against its alphabet in a Python
    generator: over half of a cache-off /verify. Accepted: up to two `=` of valid padding,
    alphabet `A-Za-z0-9-_` only, no impossible length, and only the canonical encoding (the
    bits below the last character's data are zero, which is what PyJWT's re-encoding compares).
    """
    stripped = segment.rstrip(b"=")
    padding = len(segment) - len(stripped)
    if padding > 2 or (padding and len(segment) % 4 != 0):
        raise jwt.DecodeError(f"Invalid {name} padding")
    tail = len(stripped) % 4
    if tail == 1 or _SEGMENT.fullmatch(stripped) is None:
        raise jwt.DecodeError(f"Invalid {name} padding")
    if tail and stripped[-1] not in _CANONICAL_LAST[tail]:
        raise jwt.DecodeError(f"Invalid {name} padding")
    try:
        return binascii.a2b_base64(stripped.translate(_URLSAFE) + b"=" * (-tail % 4), strict_mode=True)
    except binascii.Error as err:
        raise jwt.DecodeError(f"Invalid {name} padding") from err


class _PreparedHMAC(HMACAlgorithm):
    """HMAC that checks a key (not PEM, not SSH, not DER, not empty) once, not on every token.

    The key is the service's own secret, never the token's; the checks are pure, so their
    answer for the same bytes is remembered (a handful of keys at most).
    """

    def __init__(self, hash_alg: Any) -> None:
        super().__init__(hash_alg)
        self._prepared: dict[bytes, bytes] = {}

    def prepare_key(self, key: str | bytes) -> bytes:
        key_bytes = key.encode("utf-8") if isinstance(key, str) else key
        found = self._prepared.get(key_bytes)
        if found is None:
            found = super().prepare_key(key_bytes)
            if len(self._prepared) < 8:
                self._prepared[key_bytes] = found
        return found


class _FastSegmentsJWS(PyJWS):
    """PyJWS with the same segment rules checked faster; signature and header checks untouched."""

    def __init__(self, options: Any = None) -> None:
        super().__init__(options=options)
        if "HS256" in self._algorithms:
            self._algorithms["HS256"] = _PreparedHMAC(HMACAlgorithm.SHA256)

    @staticmethod
    def _decode_base64url_segment(segment: bytes, name: str) -> bytes:
        return decode_segment(segment, name)


class _FastSegmentsJWT(jwt.PyJWT):
    """PyJWT (every claim check unchanged) over `_FastSegmentsJWS`; one instance, built once."""

    def __init__(self) -> None:
        super().__init__()
        self._jws = _FastSegmentsJWS(options=self._get_sig_options())


_JWT = _FastSegmentsJWT()
# The same codec for the service's other HS256 tokens (the portal's session cookie): /verify's
# cache-off path costs the same whichever credential it checks.
JWT_CODEC: jwt.PyJWT = _JWT


def unverified_header(token: str) -> dict[str, Any]:
    """The header alone (to pick the key): one segment decoded, not the whole token twice."""
    try:
        header = json.loads(decode_segment(token.partition(".")[0].encode(), "header"))
    except (jwt.DecodeError, ValueError, RecursionError):
        raise InvalidToken("malformed header") from None
    if not isinstance(header, dict):
        raise InvalidToken("malformed header")
    return header


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    session_id: str
    email: str
    username: str
    role: str
    provider: str
    jti: str
    issued_at: int
    expires_at: int
    epoch: int = 0  # the user's session epoch at login; tokens without the claim count as 0


@dataclass(frozen=True)
class IssuedToken:
    token: str
    claims: AccessClaims


class AccessTokens:
    """Signs and verifies access tokens with one pinned algorithm family (see keys.py)."""

    def __init__(self, ring: KeyRing, issuer: str, audience: str, lifetime_ms: int) -> None:
        self.ring = ring
        self._issuer = issuer
        self._audience = audience
        self._lifetime = max(1, lifetime_ms // 1000)
        self._checks: dict[str, Any] = {
            "audience": audience,
            "issuer": issuer,
            "leeway": LEEWAY_SECONDS,
            "options": {"require": REQUIRED_CLAIMS, "strict_aud": True},
        }

    @property
    def lifetime_seconds(self) -> int:
        return self._lifetime

    def issue(
        self,
        *,
        user_id: str,
        session_id: str,
        email: str,
        username: str,
        role: str,
        provider: str,
        epoch: int = 0,
    ) -> IssuedToken:
        now = int(time.time())
        claims = AccessClaims(
            user_id=user_id,
            session_id=session_id,
            email=email,
            username=username,
            role=role,
            provider=provider,
            jti=secrets.token_urlsafe(16),
            issued_at=now,
            expires_at=now + self._lifetime,
            epoch=epoch,
        )
        payload = {
            "sub": user_id,
            "id": user_id,  # LibreChat's API reads `id`
            "username": username,
            "provider": provider,
            "email": email,
            "role": role,
            "sid": session_id,
            "ep": epoch,
            "jti": claims.jti,
            "iat": now,
            "exp": claims.expires_at,
            "iss": self._issuer,
            "aud": self._audience,
        }
        active = self.ring.active
        if active is None:
            token = _JWT.encode(
                payload, self.ring.hmac_secret, algorithm="HS256", headers={"typ": ACCESS_TOKEN_TYPE}
            )
        else:
            headers = {"typ": ACCESS_TOKEN_TYPE, "kid": active.kid}
            token = _JWT.encode(payload, active.private, algorithm=active.algorithm, headers=headers)
        return IssuedToken(token, claims)

    def verify(self, token: str) -> AccessClaims:
        if not token or len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
            raise InvalidToken("malformed")
        if not self.ring.keys:
            return claims_from_payload(self._verify_hs256_only(token))
        header = unverified_header(token)
        if header.get("typ") not in ACCEPTED_TYPES:
            raise InvalidToken("wrong typ")
        kid, alg = header.get("kid"), header.get("alg")
        if (kid is not None and not isinstance(kid, str)) or not isinstance(alg, str):
            raise InvalidToken("malformed header")
        found = self.ring.verification_key(kid, alg)
        if found is None:
            raise InvalidToken("unknown key or algorithm")
        key, algorithm = found
        try:
            payload: dict[str, Any] = _JWT.decode(token, key, algorithms=[algorithm], **self._checks)
        except jwt.PyJWTError:
            raise InvalidToken("signature or claims") from None
        return claims_from_payload(payload)

    def _verify_hs256_only(self, token: str) -> dict[str, Any]:
        """JWT_SECRET is the only key: one parse; the header is checked on what PyJWT decoded.

        The same checks as the keyed path, in another order: HS256 alone is allowed, then the
        signature and every claim, then `typ` and `kid` (none, or the HS256 one) on that header.
        """
        try:
            decoded = _JWT.decode_complete(token, self.ring.hmac_secret, algorithms=["HS256"], **self._checks)
        except jwt.PyJWTError:
            raise InvalidToken("signature or claims") from None
        header: dict[str, Any] = decoded["header"]
        payload: dict[str, Any] = decoded["payload"]
        if header.get("typ") not in ACCEPTED_TYPES:
            raise InvalidToken("wrong typ")
        kid = header.get("kid")
        if (kid is not None and kid != HS256_KID) or header.get("alg") != "HS256":
            raise InvalidToken("unknown key or algorithm")
        return payload


NUMERIC_CLAIMS = ("exp", "iat", "nbf")


def claims_from_payload(payload: dict[str, Any]) -> AccessClaims:
    # RFC 7519 NumericDate is a JSON number; PyJWT would read "9999999999" as one.
    for name in NUMERIC_CLAIMS:
        value = payload.get(name)
        if name in payload and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise InvalidToken("claim types")
    try:
        return AccessClaims(
            user_id=_text(payload["sub"]),
            session_id=_text(payload["sid"]),
            email=_text(payload.get("email", "")),
            username=_text(payload.get("username", "")),
            role=_text(payload.get("role", "USER")),
            provider=_text(payload.get("provider", "local")),
            jti=_text(payload["jti"]),
            issued_at=int(payload["iat"]),
            expires_at=int(payload["exp"]),
            epoch=_epoch(payload.get("ep", 0)),
        )
    except (KeyError, TypeError, ValueError):
        raise InvalidToken("claim types") from None


def _epoch(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError("ep must be a non-negative integer")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("claim must be a string")
    return value
