"""GET /forward-auth: /verify for Traefik ForwardAuth and Caddy `forward_auth`, browser-aware.

The same decision as /verify (bearer or session cookie, the in-process revocation cache, no
network call). A browser (`Accept: text/html`) without a valid session is sent to the portal
instead of shown a 401: 302 to `${DOMAIN_SERVER}/portal/login?rd=<original URL>`, absolute and
built from the configured public URL, never from the request's Host. The original URL comes
from `X-Forwarded-Proto/Host/Uri`, read only when the peer is one of TRUSTED_PROXIES; from any
other peer they are ignored and the redirect carries no `rd`. API clients keep the 401.

A banned browser (403 `banned`) is sent to the portal the same way: the portal shows the ban
page (until when) for a banned address or account, where the proxy would show a bare 403 or
the JSON body. A browser refused `mfa_required` (the proxy asked `?mfa=required`) is sent to
the portal's step-up page, which asks for the second factor and comes back. A missing role
stays as /verify answers it (signing in again would not change it).

An allowed request's answer also carries `Cookie`: the request's cookies without the session
cookie (absent when nothing else is left). Traefik cannot edit one cookie out of a header, but
`authResponseHeaders: [Cookie]` replaces the forwarded request's Cookie header with this one (and
removes it when the answer has none), so the app never receives the session cookie to replay.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from starlette.types import Scope

from services.auth.api.verify import VerifyEndpoint
from shared.errors import ErrorCode
from shared.http import ClientIPResolver

LOGIN_PATH = "/portal/login"
STEP_UP_PATH = "/portal/step-up"
MAX_URI = 2048


class ForwardAuthEndpoint(VerifyEndpoint):
    def __init__(self, *args: Any, portal_url: str | None, proxies: ClientIPResolver, **kwargs: Any) -> None:
        """/verify's arguments, plus the portal's public URL and who may report the original URL."""
        super().__init__(*args, **kwargs)
        self._login = portal_url.rstrip("/") + LOGIN_PATH if portal_url else None
        self._step_up = portal_url.rstrip("/") + STEP_UP_PATH if portal_url else None
        self._proxies = proxies

    def _finish(
        self,
        scope: Scope,
        headers: dict[bytes, bytes],
        status: int,
        out: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if 200 <= status < 300:
            kept = self._other_cookies(scope)
            return status, [*out, (b"cookie", kept)] if kept else out, body
        if self._login is None or self._step_up is None or b"text/html" not in headers.get(b"accept", b""):
            return status, out, body
        code = _code_of(body) if status == 403 else None
        if status == 401 or code == ErrorCode.BANNED:
            target = self._login
        elif code == ErrorCode.MFA_REQUIRED:
            target = self._step_up
        else:
            return status, out, body
        original = self._original_url(scope, headers)
        location = target + (f"?rd={quote(original, safe='')}" if original else "")
        return 302, [(b"location", location.encode("latin-1", "replace"))], b""

    def _other_cookies(self, scope: Scope) -> bytes:
        """Every cookie of the request except the session cookie, as one Cookie header value."""
        kept = [
            pair.strip()
            for name, value in scope["headers"]
            if name == b"cookie"
            for pair in value.split(b";")
            if pair.strip() and pair.strip().partition(b"=")[0].strip() != self._cookie_name
        ]
        return b"; ".join(kept)

    def _original_url(self, scope: Scope, headers: dict[bytes, bytes]) -> str | None:
        """The URL the browser asked the proxy for, only as a trusted proxy reports it."""
        peer = scope.get("client")
        if not peer or not self._proxies.is_trusted(peer[0]):
            return None
        proto = headers.get(b"x-forwarded-proto", b"").decode("latin-1").strip().lower()
        host = headers.get(b"x-forwarded-host", b"").decode("latin-1").strip()
        uri = headers.get(b"x-forwarded-uri", b"/").decode("latin-1").strip() or "/"
        if proto not in ("http", "https") or not host or not uri.startswith("/") or len(uri) > MAX_URI:
            return None
        # `rd` is checked against AUTH_REDIRECT_DOMAINS when the portal uses it; here it is only carried.
        return f"{proto}://{host}{uri}"


def _code_of(body: bytes) -> str | None:
    """The `code` of a refusal's JSON body (only read on the rare 403 path)."""
    try:
        code = json.loads(body).get("code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, str) else None
