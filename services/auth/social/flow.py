"""The state of one provider sign-in, sealed into a short-lived cookie of the browser that began it.

Nothing is stored server-side until the callback: the cookie carries `state`, the nonce, the
PKCE verifier, where to go afterwards and why the flow runs (sign-in or linking), encrypted and
authenticated with AES-256-GCM under a key of its own (from OPENID_SESSION_SECRET, else HKDF of
JWT_REFRESH_SECRET). The callback accepts it only with the same `state` in its query (so it is
bound to this browser), within `FLOW_MAX_AGE_S`, and once: its `state` is then marked used.

Each flow has a cookie of its own, named with a digest of its `state` (`cookie_suffix`), so two
sign-ins begun in two tabs do not overwrite each other; at most `MAX_OPEN_FLOWS` live at once
(the oldest go), which keeps the Cookie header well under the proxies' 8 KB line.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.crypto import b64url_decode, b64url_encode
from shared.errors import DomainError, ErrorCode

FLOW_MAX_AGE_S = 600
MAX_COOKIE_CHARS = 4000
MAX_OPEN_FLOWS = 3
SUFFIX_CHARS = 16  # 64 bits of the state's digest: names the cookie, says nothing of the state
_AAD = b"authgate-oauth-flow-v1"
MODE_SIGN_IN = "signin"
MODE_LINK = "link"


class FlowRefused(DomainError):
    """A callback whose flow cookie is missing, altered, expired, replayed or for another state."""

    def __init__(self, reason: str) -> None:
        super().__init__(ErrorCode.AUTH_FAILED, "The sign-in could not be completed. Start again.")
        self.reason = reason


@dataclass(frozen=True)
class Flow:
    provider: str
    state: str
    nonce: str
    code_verifier: str
    rd: str  # where to go after success ("" for DOMAIN_CLIENT)
    portal: bool  # started from the portal: its session cookie too, and its pages for failures
    mode: str = MODE_SIGN_IN
    link_user_id: str = ""  # MODE_LINK: the signed-in user the identity is to be linked to
    issued_at: int = 0

    @property
    def state_hash(self) -> str:
        return hashlib.sha256(self.state.encode()).hexdigest()


def cookie_suffix(state: str) -> str:
    """The part of a flow cookie's name that tells it from another tab's flow."""
    return hashlib.sha256(state.encode()).hexdigest()[:SUFFIX_CHARS]


def new_flow(
    provider: str, rd: str, *, portal: bool, mode: str = MODE_SIGN_IN, link_user_id: str = ""
) -> Flow:
    return Flow(
        provider=provider,
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        code_verifier=secrets.token_urlsafe(64),  # 86 characters: within RFC 7636's 43..128
        rd=rd,
        portal=portal,
        mode=mode,
        link_user_id=link_user_id,
        issued_at=int(time.time()),
    )


class FlowSealer:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, flow: Flow) -> str:
        nonce = os.urandom(12)
        data = json.dumps(asdict(flow), separators=(",", ":")).encode()
        return b64url_encode(nonce + self._aead.encrypt(nonce, data, _AAD))

    def issued_at(self, sealed: str) -> int | None:
        """When a sealed flow began (None when it is not one of ours): to drop the oldest."""
        if len(sealed) > MAX_COOKIE_CHARS:
            return None
        try:
            raw = b64url_decode(sealed)
            issued = json.loads(self._aead.decrypt(raw[:12], raw[12:], _AAD)).get("issued_at")
        except (InvalidTag, ValueError, TypeError, AttributeError):
            return None
        return issued if isinstance(issued, int) and not isinstance(issued, bool) else None

    def open(self, sealed: str | None, state: str | None, provider: str, now: float | None = None) -> Flow:
        """The flow, when the cookie is intact, fresh, for `provider`, and carries this `state`."""
        if not sealed or len(sealed) > MAX_COOKIE_CHARS:
            raise FlowRefused("missing_flow_cookie")
        try:
            raw = b64url_decode(sealed)
            data = json.loads(self._aead.decrypt(raw[:12], raw[12:], _AAD))
            flow = Flow(**data)
        except (InvalidTag, ValueError, TypeError):
            raise FlowRefused("invalid_flow_cookie") from None
        age = (now if now is not None else time.time()) - flow.issued_at
        if not -60 <= age <= FLOW_MAX_AGE_S:  # a minute of skew between replicas
            raise FlowRefused("expired_flow")
        if flow.provider != provider:
            raise FlowRefused("other_provider")
        if not state or not hmac.compare_digest(flow.state.encode(), state.encode()):
            raise FlowRefused("state_mismatch")
        return flow
