"""Signing keys: HS256 with JWT_SECRET (LibreChat-compatible) or asymmetric keys with a JWKS.

Asymmetric keys come from `JWT_KEYS_DIR`, one PEM private key per file named
`<kid>.<state>.pem`, state being `published` (in the JWKS, not signing yet),
`active` (signs; exactly one) or `retired` (verifies, never signs). Each kid is
bound to exactly one algorithm and key type, and HS256 is refused as soon as an
asymmetric key is active: mixing families is how algorithm confusion happens.

Key objects are built once here; building an RSA key from PEM per token would
make signing fifty times slower.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from shared.config import ConfigError

ALGORITHMS = ("HS256", "ES256", "RS256", "EdDSA")
STATES = ("published", "active", "retired")
HS256_KID = "hs256"
_FILE_NAME = re.compile(r"(?P<kid>[A-Za-z0-9_\-]{1,64})\.(?P<state>published|active|retired)\.pem")

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    state: str
    private: PrivateKey
    public: PublicKey
    jwk: dict[str, Any]
    seen_retired_at: float | None = None


@dataclass
class KeyRing:
    """What signs, what verifies and what the JWKS shows; immutable after start."""

    algorithm: str
    hmac_secret: bytes
    keys: dict[str, SigningKey] = field(default_factory=dict)
    retired_window_s: float = 0.0

    @property
    def active(self) -> SigningKey | None:
        for key in self.keys.values():
            if key.state == "active":
                return key
        return None

    @property
    def hs256_enabled(self) -> bool:
        """HS256 signs and verifies until the first asymmetric key becomes active."""
        return self.active is None

    def verification_key(self, kid: str | None, alg: str | None) -> tuple[Any, str] | None:
        """The key and the single algorithm allowed for a token header; None when unknown."""
        if kid is None or kid == HS256_KID:
            if self.hs256_enabled and alg == "HS256":
                return self.hmac_secret, "HS256"
            return None
        key = self.keys.get(kid)
        if key is None or alg != key.algorithm or not self._usable(key):
            return None
        return key.public, key.algorithm

    def _usable(self, key: SigningKey) -> bool:
        if key.state != "retired" or key.seen_retired_at is None:
            return True
        return time.monotonic() - key.seen_retired_at <= self.retired_window_s

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.jwk for key in self.keys.values() if self._usable(key)]}


def _check_type(kid: str, algorithm: str, private: Any) -> PrivateKey:
    if algorithm == "ES256":
        if not isinstance(private, ec.EllipticCurvePrivateKey) or private.curve.name != "secp256r1":
            raise ConfigError("JWT_KEYS_DIR", f"key {kid!r} must be an EC P-256 private key for ES256")
        return private
    if algorithm == "RS256":
        if not isinstance(private, rsa.RSAPrivateKey) or private.key_size < 2048:
            raise ConfigError("JWT_KEYS_DIR", f"key {kid!r} must be an RSA private key of >= 2048 bits")
        return private
    if not isinstance(private, ed25519.Ed25519PrivateKey):
        raise ConfigError("JWT_KEYS_DIR", f"key {kid!r} must be an Ed25519 private key for EdDSA")
    return private


def _jwk(kid: str, algorithm: str, public: PublicKey) -> dict[str, Any]:
    if isinstance(public, ec.EllipticCurvePublicKey):
        data = json.loads(ECAlgorithm.to_jwk(public))
    elif isinstance(public, rsa.RSAPublicKey):
        data = json.loads(RSAAlgorithm.to_jwk(public))
    else:
        data = json.loads(OKPAlgorithm.to_jwk(public))
    public_fields = {k: v for k, v in data.items() if k not in {"d", "p", "q", "dp", "dq", "qi", "k"}}
    return {**public_fields, "kid": kid, "alg": algorithm, "use": "sig"}


def load_key_ring(algorithm: str, hmac_secret: str, keys_dir: str | None, retired_window_s: float) -> KeyRing:
    if algorithm not in ALGORITHMS:
        raise ConfigError("JWT_ALGORITHM", f"must be one of {', '.join(ALGORITHMS)}")
    ring = KeyRing(algorithm, hmac_secret.encode(), retired_window_s=retired_window_s)
    if algorithm == "HS256":
        if keys_dir:
            raise ConfigError("JWT_KEYS_DIR", "is set but JWT_ALGORITHM is HS256; choose one family")
        return ring
    if not keys_dir:
        raise ConfigError("JWT_KEYS_DIR", f"is required with JWT_ALGORITHM={algorithm}")
    directory = Path(keys_dir)
    if not directory.is_dir():
        raise ConfigError("JWT_KEYS_DIR", f"{keys_dir} is not a directory")
    now = time.monotonic()
    for path in sorted(directory.glob("*.pem")):
        match = _FILE_NAME.fullmatch(path.name)
        if match is None:
            raise ConfigError("JWT_KEYS_DIR", f"{path.name}: name it <kid>.<published|active|retired>.pem")
        kid, state = match["kid"], match["state"]
        if kid in ring.keys or kid == HS256_KID:
            raise ConfigError("JWT_KEYS_DIR", f"kid {kid!r} appears twice (or is reserved)")
        try:
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError, OSError) as exc:
            raise ConfigError(
                "JWT_KEYS_DIR", f"{path.name}: not an unencrypted PEM private key ({exc})"
            ) from None
        checked = _check_type(kid, algorithm, private)
        public = checked.public_key()
        ring.keys[kid] = SigningKey(
            kid=kid,
            algorithm=algorithm,
            state=state,
            private=checked,
            public=public,
            jwk=_jwk(kid, algorithm, public),
            seen_retired_at=now if state == "retired" else None,
        )
    actives = [key.kid for key in ring.keys.values() if key.state == "active"]
    if len(actives) > 1:
        raise ConfigError("JWT_KEYS_DIR", f"exactly one key may be active, found {', '.join(actives)}")
    if not ring.keys:
        raise ConfigError("JWT_KEYS_DIR", f"no <kid>.<state>.pem keys in {keys_dir}")
    retired = [key.kid for key in ring.keys.values() if key.state == "retired"]
    if retired and not actives:
        # Only before the first activation may HS256 sign; a retired key means that moment
        # has passed, and silently falling back to the shared secret would mix families.
        raise ConfigError(
            "JWT_KEYS_DIR", f"retired key(s) {', '.join(retired)} but no active key: activate one"
        )
    return ring
