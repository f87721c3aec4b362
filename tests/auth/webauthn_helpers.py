"""A software authenticator: real attestation and assertion responses the `webauthn` library verifies.

An EC P-256 key per credential (`cryptography`), authenticatorData built byte by byte
(rpIdHash, flags, big-endian sign counter, attested credential data with a COSE key), 'none'
attestation in CBOR, clientDataJSON as a browser writes it, and an ECDSA-SHA256 signature over
authenticatorData || SHA-256(clientDataJSON). Each knob a test needs to break one check (origin,
RP ID, flags, counter, challenge) is a keyword argument; the defaults are a well-behaved passkey.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn.helpers import encode_cbor

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40
AAGUID = bytes(16)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def cose_key(public: ec.EllipticCurvePublicKey) -> bytes:
    numbers = public.public_numbers()
    return encode_cbor(
        {1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}
    )


@dataclass
class SoftCredential:
    credential_id: bytes
    key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0

    @property
    def id(self) -> str:
        return b64url(self.credential_id)


def client_data(kind: str, challenge: str, origin: str) -> bytes:
    return json.dumps(
        {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}, separators=(",", ":")
    ).encode()


def auth_data(rp_id: str, flags: int, sign_count: int, attested: bytes = b"") -> bytes:
    return hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + struct.pack(">I", sign_count) + attested


@dataclass
class SoftAuthenticator:
    """Holds its credentials as a platform authenticator does; `origin` is where the "browser" is."""

    origin: str
    counter_step: int = 1  # 0: an authenticator without a counter (most synced passkeys)
    credentials: list[SoftCredential] = field(default_factory=list)

    def create(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        flags: int = UP | UV | AT | BE | BS,
        challenge: str | None = None,
        credential_id: bytes | None = None,
    ) -> dict[str, Any]:
        """`navigator.credentials.create()` for these options, as `PublicKeyCredential.toJSON()`."""
        rp = rp_id or options["rp"]["id"]
        key = ec.generate_private_key(ec.SECP256R1())
        cred_id = credential_id or secrets.token_bytes(32)
        credential = SoftCredential(cred_id, key, rp, unb64url(options["user"]["id"]), 0)
        attested = AAGUID + struct.pack(">H", len(cred_id)) + cred_id + cose_key(key.public_key())
        data = auth_data(rp, flags, 0, attested)
        attestation = encode_cbor({"fmt": "none", "attStmt": {}, "authData": data})
        cdj = client_data("webauthn.create", challenge or options["challenge"], origin or self.origin)
        self.credentials.append(credential)
        return {
            "id": credential.id,
            "rawId": credential.id,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(cdj),
                "attestationObject": b64url(attestation),
                "transports": ["internal", "hybrid"],
            },
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
        }

    def get(
        self,
        options: dict[str, Any],
        credential: SoftCredential | None = None,
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        flags: int = UP | UV | BE | BS,
        sign_count: int | None = None,
        challenge: str | None = None,
        user_handle: bytes | None = None,
    ) -> dict[str, Any]:
        """`navigator.credentials.get()`: the first (or the given) credential signs the challenge."""
        chosen = credential or self.credentials[0]
        if sign_count is None:
            chosen.sign_count += self.counter_step
            sign_count = chosen.sign_count
        data = auth_data(rp_id or chosen.rp_id, flags, sign_count)
        cdj = client_data("webauthn.get", challenge or options["challenge"], origin or self.origin)
        signature = chosen.key.sign(data + hashlib.sha256(cdj).digest(), ec.ECDSA(hashes.SHA256()))
        return {
            "id": chosen.id,
            "rawId": chosen.id,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(cdj),
                "authenticatorData": b64url(data),
                "signature": b64url(signature),
                "userHandle": b64url(user_handle if user_handle is not None else chosen.user_handle),
            },
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
        }
