"""Synchronizer tokens for the portal's forms, bound to a pre-session cookie.

The cookie holds 256 random bits; each form carries HMAC(key, cookie). A cross-site page
can make the browser send the cookie but can neither read it nor compute the token, and a
token lifted from another browser fails against this browser's cookie. Comparison is in
constant time. The request's `Origin` (or `Referer`) must also be the portal's own origin.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from shared.crypto import b64url_encode, derive_key

MAX_COOKIE_CHARS = 128


class CsrfTokens:
    def __init__(self, secret: str) -> None:
        self._key = derive_key(secret, b"authgate portal csrf")

    @staticmethod
    def new_cookie() -> str:
        return secrets.token_urlsafe(32)

    def form_token(self, cookie: str) -> str:
        return b64url_encode(hmac.new(self._key, cookie.encode(), hashlib.sha256).digest())

    def valid(self, cookie: str | None, token: str | None) -> bool:
        if not cookie or not token or len(cookie) > MAX_COOKIE_CHARS:
            return False
        return hmac.compare_digest(self.form_token(cookie).encode(), token.encode())


def origin_of(url: str | None) -> str | None:
    """`scheme://host[:port]` lower-cased, as a browser writes `Origin`; None when not a URL."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return None
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def same_origin(
    origin: str | None, referer: str | None, portal: str | None, fetch_site: str | None = None
) -> bool:
    """`Origin` decides when sent; otherwise `Referer`; with neither, or no portal URL, refuse.

    The portal's pages send `Referrer-Policy: no-referrer`, under which browsers write
    `Origin: null` even on a same-origin POST (Fetch's origin serialization). Such a request is
    accepted only when the browser also says `Sec-Fetch-Site: same-origin`, a header no page
    can set; a browser that sends neither is refused (fail closed).
    """
    own = origin_of(portal)
    if own is None:
        return False
    if origin == "null":
        return fetch_site == "same-origin"
    presented = origin_of(origin) if origin is not None else origin_of(referer)
    return presented is not None and hmac.compare_digest(presented, own)
