"""GET /verify (and /verify/...): the forward-auth check for nginx, Traefik and Envoy.

A bearer token or the portal's session cookie (the bearer wins when both are sent); the
cookie is a token of its own type, checked like the bearer one against the same in-process
revocation cache, and adds `X-Auth-Amr`. `?mfa=required` refuses a session that signed in
without a second factor (a bearer token never proves one): 403 `mfa_required`.

A lean ASGI endpoint outside the router and middleware: it makes no network
call (revocations and bans come from in-process caches) and caches verified
signatures, so it costs about as much as a bare endpoint. It answers 2xx only
for a valid, unrevoked, unbanned token with the required role; any exception
becomes a 500, never a 2xx.
"""

from __future__ import annotations

import itertools
import json
import random
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qsl

import structlog
from starlette.types import Receive, Scope, Send

from services.auth.revocations import RevocationCache
from services.auth.session_cookie import MULTI_FACTOR_AMR, SessionCookieTokens
from services.auth.tokens import LEEWAY_SECONDS, AccessClaims, AccessTokens, InvalidToken
from shared.errors import ErrorCode
from shared.http import ClientIPResolver, valid_request_id
from shared.timefmt import iso_from_seconds

log = structlog.get_logger("authgate.verify")

VERIFY_PATH = "/verify"
FORWARD_AUTH_PATH = "/forward-auth"
# Paths whose query string is the proxy's configuration (`roles`, `mfa`), not the client's.
PROXY_CONFIGURED_QUERY = frozenset({VERIFY_PATH, FORWARD_AUTH_PATH})
REQUIRED_ROLES_HEADER = b"x-auth-required-roles"


@dataclass(frozen=True)
class BanNotice:
    subject: str
    reason: str
    expires_at: str
    retry_after: int


class BanView(Protocol):
    @property
    def has_bans(self) -> bool: ...

    def ban_for(self, ip: str | None, user_id: str | None) -> BanNotice | None: ...


@dataclass
class VerifyCounters:
    allowed: int = 0
    unauthorized: int = 0
    forbidden: int = 0
    banned: int = 0
    stale: int = 0
    errors: int = 0
    bad_request: int = 0
    cache_hits: int = 0


def is_verify_path(path: str) -> bool:
    return path == VERIFY_PATH or path.startswith(VERIFY_PATH + "/")


def is_forward_auth_path(path: str) -> bool:
    return path == FORWARD_AUTH_PATH


@dataclass(frozen=True)
class Verified:
    """A verified token's claims and the identity headers built from them once."""

    claims: AccessClaims
    headers: tuple[tuple[bytes, bytes], ...]
    amr: tuple[str, ...] = ()  # a session cookie's sign-in methods; a bearer token proves none


class TokenCache:
    """Verified tokens by their exact text; bounded, least recently used out first.

    Only the signature check is cached: revocation and bans are checked on every request.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[str, Verified] = OrderedDict()

    def get(self, token: str) -> Verified | None:
        found = self._items.get(token)
        if found is None:
            return None
        if found.claims.expires_at + LEEWAY_SECONDS < time.time():
            del self._items[token]
            return None
        self._items.move_to_end(token)
        return found

    def put(self, token: str, verified: Verified) -> None:
        if self._size <= 0:
            return
        self._items[token] = verified
        if len(self._items) > self._size:
            self._items.popitem(last=False)


class VerifyEndpoint:
    def __init__(
        self,
        tokens: AccessTokens,
        revocations: RevocationCache,
        bans: Callable[[], BanView | None],
        client_ip: ClientIPResolver,
        header_prefix: str,
        log_sample: float,
        cache_size: int,
        cookies: SessionCookieTokens,
        cookie_name: str,
    ) -> None:
        self._tokens = tokens
        self._cookies = cookies
        self._cookie_name = cookie_name.encode("latin-1")
        self._cookie_cache = TokenCache(cache_size)
        self._revocations = revocations
        self._bans = bans
        self._client_ip = client_ip
        self._cache = TokenCache(cache_size)
        self._log_sample = log_sample
        prefix = header_prefix.lower().encode()
        self._names = {
            field: prefix + suffix
            for field, suffix in (
                ("user_id", b"user-id"),
                ("email", b"email"),
                ("username", b"username"),
                ("role", b"role"),
                ("session_id", b"session-id"),
                ("amr", b"amr"),
            )
        }
        self.counters = VerifyCounters()
        # Request ids: a random per-process prefix and a counter, cheaper than fresh randomness.
        self._id_prefix = secrets.token_hex(4)
        self._id_counter = itertools.count()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = ""
        try:
            headers = dict(scope["headers"])
            incoming = headers.get(b"x-request-id", b"").decode("latin-1")
            if valid_request_id(incoming):  # the same rule as every other route
                request_id = incoming
            else:
                request_id = f"{self._id_prefix}{next(self._id_counter):08x}"
            status, response_headers, body = self._finish(scope, headers, *self._decide(scope, headers))
        except Exception:
            self.counters.errors += 1
            log.exception("verify_error", request_id=request_id)
            status, response_headers, body = 500, [], _body(ErrorCode.INTERNAL_ERROR, "Internal error.")
        response_headers.append((b"x-request-id", request_id.encode("latin-1", "replace")))
        response_headers.append((b"cache-control", b"no-store"))
        if body:
            response_headers.append((b"content-type", b"application/json"))
        response_headers.append((b"content-length", str(len(body)).encode() if body else b"0"))
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body if scope.get("method") != "HEAD" else b""})
        if self._log_sample and random.random() < self._log_sample:  # noqa: S311 - sampling, not security
            log.info("verify", status=status, request_id=request_id, path=scope["path"])

    def _finish(
        self,
        scope: Scope,
        headers: dict[bytes, bytes],
        status: int,
        out: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The answer as decided; /forward-auth turns a browser's 401 into a redirect here."""
        return status, out, body

    def _decide(
        self, scope: Scope, headers: dict[bytes, bytes]
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if not self._revocations.usable():
            self.counters.stale += 1
            return (
                503,
                [(b"retry-after", b"1")],
                _body(ErrorCode.REVOCATION_STATE_STALE, "Revocation state is not current; retry shortly."),
            )
        query = self._query(scope)
        if isinstance(query, str):  # the proxy's configuration is wrong: say so, never "any role"
            self.counters.bad_request += 1
            return 400, [], _body(ErrorCode.BAD_REQUEST, query)
        required, mfa_required = query
        # Two Authorization headers can only exist when some header name repeats (the dict is shorter).
        duplicated = len(headers) != len(scope["headers"])
        if duplicated and sum(1 for name, _ in scope["headers"] if name == b"authorization") > 1:
            self.counters.bad_request += 1
            return 400, [], _body(ErrorCode.BAD_REQUEST, "Send one Authorization header.")
        token = _bearer(headers.get(b"authorization"))
        if token is not None:
            verified = self._verified_bearer(token)
        else:
            cookies = self._session_cookies(scope) if b"cookie" in headers else []
            if len(cookies) > 1:
                self.counters.bad_request += 1
                return 400, [], _body(ErrorCode.BAD_REQUEST, "Send one session cookie.")
            if not cookies:
                return self._unauthorized(None)
            verified = self._verified_cookie(cookies[0])
        if verified is None:
            return self._unauthorized(ErrorCode.INVALID_TOKEN)
        claims = verified.claims
        # Bans before revocations: a user ban also revokes the user's sessions, and the
        # holder of a banned user's token is told `banned` (with Retry-After), not 401.
        bans = self._bans()
        if bans is not None and bans.has_bans:
            peer = scope.get("client")
            forwarded = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"]
            ip = self._client_ip.resolve(peer[0] if peer else None, forwarded)
            notice = bans.ban_for(ip, claims.user_id)
            if notice is not None:
                self.counters.banned += 1
                return (
                    403,
                    [(b"retry-after", str(notice.retry_after).encode())],
                    _body(
                        ErrorCode.BANNED,
                        "Access is temporarily banned.",
                        reason=notice.reason,
                        expires_at=notice.expires_at,
                    ),
                )
        if self._revocations.is_revoked(claims.session_id):
            revoked_by_ban = self._revocations.ban_of(claims.session_id)
            if revoked_by_ban is not None:  # the revocation arrived before the ban feed did
                reason, ends = revoked_by_ban
                self.counters.banned += 1
                retry_after = max(1, int(ends - time.time()) + 1)
                expires_at = iso_from_seconds(ends)
                return (
                    403,
                    [(b"retry-after", str(retry_after).encode())],
                    _body(
                        ErrorCode.BANNED,
                        "Access is temporarily banned.",
                        reason=reason,
                        expires_at=expires_at,
                    ),
                )
            return self._unauthorized(ErrorCode.INVALID_TOKEN)
        if self._revocations.predates(claims.user_id, claims.epoch):
            return self._unauthorized(ErrorCode.INVALID_TOKEN)
        if required and claims.role not in required:
            self.counters.forbidden += 1
            return 403, [], _body(ErrorCode.FORBIDDEN, "Your role may not access this resource.")
        if mfa_required and MULTI_FACTOR_AMR.isdisjoint(verified.amr):
            self.counters.forbidden += 1
            return 403, [], _body(ErrorCode.MFA_REQUIRED, "Sign in with a second factor to access this.")
        self.counters.allowed += 1
        return 200, list(verified.headers), b""

    def _verified_bearer(self, token: str) -> Verified | None:
        verified = self._cache.get(token)
        if verified is not None:
            self.counters.cache_hits += 1
            return verified
        try:
            claims = self._tokens.verify(token)
        except InvalidToken:
            return None
        verified = Verified(claims, self._identity_headers(claims))
        self._cache.put(token, verified)
        return verified

    def _verified_cookie(self, token: str) -> Verified | None:
        """A session cookie, cached apart from bearer tokens: neither ever passes as the other."""
        verified = self._cookie_cache.get(token)
        if verified is not None:
            self.counters.cache_hits += 1
            return verified
        try:
            found = self._cookies.verify(token)
        except InvalidToken:
            return None
        verified = Verified(found.access, self._identity_headers(found.access, found.amr), found.amr)
        self._cookie_cache.put(token, verified)
        return verified

    def _session_cookies(self, scope: Scope) -> list[str]:
        """Every value of the session cookie, across every Cookie header (HTTP/2 splits them)."""
        found: list[str] = []
        for name, value in scope["headers"]:
            if name != b"cookie" or self._cookie_name not in value:
                continue
            for pair in value.split(b";"):
                key, sep, raw = pair.strip().partition(b"=")
                if sep and key == self._cookie_name:
                    found.append(raw.strip().strip(b'"').decode("latin-1"))
        return found

    def _identity_headers(
        self, claims: AccessClaims, amr: tuple[str, ...] | None = None
    ) -> tuple[tuple[bytes, bytes], ...]:
        names = self._names
        headers = (
            (names["user_id"], _header_value(claims.user_id)),
            (names["email"], _header_value(claims.email)),
            (names["username"], _header_value(claims.username)),
            (names["role"], _header_value(claims.role)),
            (names["session_id"], _header_value(claims.session_id)),
        )
        if amr is None:
            return headers
        return (*headers, (names["amr"], _header_value(",".join(amr))))

    def _unauthorized(self, error: ErrorCode | None) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        self.counters.unauthorized += 1
        challenge = b'Bearer error="invalid_token"' if error is ErrorCode.INVALID_TOKEN else b"Bearer"
        return (
            401,
            [(b"www-authenticate", challenge)],
            _body(ErrorCode.UNAUTHORIZED, "A valid access token is required."),
        )

    @staticmethod
    def _query(scope: Scope) -> tuple[frozenset[str], bool] | str:
        """Required roles and whether a second factor is required, or an error message on misuse.

        `roles` come from /verify's own query (nginx, Traefik) or, under /verify/..., from the
        proxy's header. /verify's query belongs to the proxy's configuration: anything but one
        `roles` and one `mfa=required` there is a mistake (`role=`, `Roles=`, `roles[]=`),
        answered 400 rather than read as "any role". Under /verify/... (Envoy) the query string
        is the client's, so it is ignored and only the header the proxy sets counts, given at
        most once.
        """
        if scope["path"] in PROXY_CONFIGURED_QUERY:
            query = scope.get("query_string", b"")
            if not query:
                return frozenset(), False
            pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
            names = sorted(name for name, _ in pairs)
            if not pairs or names not in (["roles"], ["mfa"], ["mfa", "roles"]):
                return "/verify takes only 'roles' and 'mfa=required', each once."
            given = dict(pairs)
            if given.get("mfa", "required") != "required":
                return "The only value of 'mfa' is 'required'."
            mfa = "mfa" in given
            if "roles" not in given:
                return frozenset(), mfa
            raw = given["roles"]
            return frozenset(role.strip().upper() for role in raw.split(",") if role.strip()), mfa
        values = [value for name, value in scope["headers"] if name == REQUIRED_ROLES_HEADER]
        if len(values) > 1:
            return "Send X-Auth-Required-Roles once."
        raw = values[0].decode("latin-1") if values else ""
        return frozenset(role.strip().upper() for role in raw.split(",") if role.strip()), False


def _bearer(value: bytes | None) -> str | None:
    if not value:
        return None
    scheme, _, credential = value.decode("latin-1").partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        return None
    return credential


def _header_value(value: str) -> bytes:
    """Identity values go upstream as headers: drop anything that could split a header."""
    if value.isprintable():  # the usual case, checked in C
        return value.encode("utf-8")
    return "".join(ch for ch in value if ch.isprintable()).encode("utf-8")


def _body(code: ErrorCode, message: str, **extra: object) -> bytes:
    return json.dumps({"code": code, "message": message, **extra}).encode()
