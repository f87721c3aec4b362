"""HTTP plumbing both services share: request ids, client IPs, bodies, service keys."""

from __future__ import annotations

import functools
import hmac
import ipaddress
import json
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from prometheus_client import Counter
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.config import ConfigError, IPNetwork
from shared.errors import ApiError, ErrorCode

MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32
REQUEST_ID_HEADER = "x-request-id"

Model = TypeVar("Model", bound=BaseModel)


# Request ids ---------------------------------------------------------------------


def valid_request_id(value: str) -> bool:
    return 0 < len(value) <= 128 and all((c.isascii() and c.isalnum()) or c in "-_.:" for c in value)


class RequestIdMiddleware:
    """Accept a sane incoming `X-Request-Id` or mint one; echo it and bind it to logs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = incoming if valid_request_id(incoming) else secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                message["headers"] = [*headers, header]
            await send(message)

        await self.app(scope, receive, send_with_id)


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


# Client IP -------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def normalize_ip(value: str) -> str | None:
    """Canonical text of an address, or None; strips ports and brackets proxies add."""
    text = value.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1 and "." in text:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:  # a zone names the proxy's interface, not the client
            address = ipaddress.IPv6Address(text.partition("%")[0])
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
    return str(address)


# A trusted proxy that names no client address: one shared client, limited (fail closed), never
# banned and never exempt (that would be the proxy's own address).
UNKNOWN_CLIENT = "unknown"
UNKNOWN_CLIENTS = Counter(
    "authgate_client_ip_unknown_total",
    "Requests from a trusted proxy that named no usable client address",
    ["reason"],
)
UNKNOWN_LOG_INTERVAL_S = 60.0
_unknown_log = {"next": 0.0, "suppressed": 0}
log = structlog.get_logger("authgate.http")


def _unknown_client(reason: str) -> str:
    """Count it; warn at most once a minute (a broken proxy sends every request this way)."""
    UNKNOWN_CLIENTS.labels(reason).inc()
    now = time.monotonic()
    if now >= _unknown_log["next"]:
        log.warning(
            "client_ip_unknown",
            reason=reason,
            suppressed=int(_unknown_log["suppressed"]),
            detail="a trusted proxy sent no usable X-Forwarded-For; check its configuration",
        )
        _unknown_log["next"] = now + UNKNOWN_LOG_INTERVAL_S
        _unknown_log["suppressed"] = 0
    else:
        _unknown_log["suppressed"] += 1
    return UNKNOWN_CLIENT


@dataclass(frozen=True)
class ClientIPResolver:
    """Socket peer unless it is a trusted proxy; then walk X-Forwarded-For from the right.

    At most `hops` trusted entries are skipped, and the left-most entry is never
    trusted merely for being left-most: an attacker controls everything left of
    the last proxy that appended.
    """

    trusted: tuple[IPNetwork, ...] = ()
    hops: int = 0

    def is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)

    def resolve(self, peer: str | None, forwarded_for: Sequence[str]) -> str:
        """The client's address, or UNKNOWN_CLIENT when a trusted proxy did not name one."""
        client = normalize_ip(peer or "") or "0.0.0.0"
        if self.hops <= 0 or not self.is_trusted(client):
            return client
        entries = [e for header in forwarded_for for e in header.split(",") if e.strip()]
        if not entries:
            return _unknown_client("no_forwarded_for")
        skipped = 1  # the peer itself was the first trusted hop
        for entry in reversed(entries):
            address = normalize_ip(entry)
            if address is None:
                return _unknown_client("malformed")  # `unknown`, junk: never the proxy itself
            if self.is_trusted(address) and skipped < self.hops:
                skipped += 1
                continue
            return address
        return _unknown_client("proxies_only")

    def from_request(self, request: Request) -> str:
        peer = request.client.host if request.client else None
        return self.resolve(peer, request.headers.getlist("x-forwarded-for"))


def proxy_settings(trusted: tuple[IPNetwork, ...], hops: int, name: str = "TRUST_PROXY") -> ClientIPResolver:
    if hops > 0 and not trusted:
        raise ConfigError(name, "is > 0 but TRUSTED_PROXIES is empty; list the proxy networks")
    return ClientIPResolver(trusted=trusted, hops=hops)


# Bodies ----------------------------------------------------------------------------


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """Read at most `limit` bytes, also when the client sends chunked data."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, ErrorCode.BAD_REQUEST, "Invalid Content-Length.")
        if int(declared) > limit:
            raise ApiError(413, ErrorCode.PAYLOAD_TOO_LARGE, f"Body exceeds {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, ErrorCode.PAYLOAD_TOO_LARGE, f"Body exceeds {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _depth(value: Any, limit: int) -> int:
    stack: list[tuple[Any, int]] = [(value, 1)]
    deepest = 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ApiError(400, ErrorCode.INVALID_JSON, f"Duplicate key {key!r} in JSON body.")
        result[key] = value
    return result


def decode_json(raw: bytes) -> Any:
    """Parse JSON strictly: UTF-8, no duplicate keys, bounded depth and number size."""
    if not raw.strip():
        raise ApiError(400, ErrorCode.INVALID_JSON, "Request body must be a JSON object.")
    if raw.count(b"[") + raw.count(b"{") > 2000:
        raise ApiError(400, ErrorCode.INVALID_JSON, "JSON body is nested too deeply.")
    try:
        value = json.loads(raw, object_pairs_hook=_reject_duplicates, parse_constant=_no_constant)
    except ApiError:
        raise
    except (ValueError, RecursionError):
        raise ApiError(400, ErrorCode.INVALID_JSON, "Malformed JSON body.") from None
    if _depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise ApiError(400, ErrorCode.INVALID_JSON, "JSON body is nested too deeply.")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def is_json_media_type(content_type: str) -> bool:
    """`application/json` or a `+json` type: what no cross-site form or no-cors fetch can send."""
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def parse_body(request: Request, model: type[Model], *, allow_empty: bool = False) -> Model:
    """Read, decode and validate a JSON body against a pydantic model.

    The content type is checked before the body is read: a cross-site page can post text/plain,
    a form or (with a no-cors fetch) no type at all, never application/json. Only an empty body
    without any content type may stand for "no fields" where `allow_empty` says so.
    """
    content_type = request.headers.get("content-type")
    if content_type is not None and not is_json_media_type(content_type):
        raise ApiError(415, ErrorCode.UNSUPPORTED_MEDIA_TYPE, "Send the body as application/json.")
    raw = await read_body(request)
    if allow_empty and not raw.strip() and (content_type is not None or not raw):
        return model.model_validate({})
    if content_type is None:
        raise ApiError(415, ErrorCode.UNSUPPORTED_MEDIA_TYPE, "Send the body as application/json.")
    value = decode_json(raw)
    if not isinstance(value, dict):
        raise ApiError(422, ErrorCode.INVALID_INPUT, "Request body must be a JSON object.")
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise ApiError(422, ErrorCode.INVALID_INPUT, validation_message(exc)) from None


# Service keys ----------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceKey:
    name: str
    scopes: frozenset[str]
    secret: bytes


@dataclass(frozen=True)
class Caller:
    """Who called, for audit records and scope checks."""

    name: str
    scopes: frozenset[str]


MIN_SERVICE_SECRET_BYTES = 24


def parse_service_keys(name: str, value: str | None, allowed_scopes: Iterable[str]) -> tuple[ServiceKey, ...]:
    """Parse `name:scope[+scope]:secret` entries, comma-separated.

    Several entries may share a name (rotation: old and new secret both valid).
    """
    allowed = frozenset(allowed_scopes)
    keys: list[ServiceKey] = []
    seen: set[bytes] = set()
    for entry in (value or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        parts = entry.split(":", 2)
        if len(parts) != 3 or not all(parts):
            raise ConfigError(name, "entries must look like name:scope:secret")
        key_name, scope_text, secret = parts
        scopes = frozenset(s for s in scope_text.replace("|", "+").split("+") if s)
        unknown = scopes - allowed
        if unknown:
            raise ConfigError(name, f"unknown scope {sorted(unknown)[0]!r} for {key_name!r}")
        if len(secret.encode()) < MIN_SERVICE_SECRET_BYTES:
            raise ConfigError(
                name, f"secret for {key_name!r} must be at least {MIN_SERVICE_SECRET_BYTES} bytes"
            )
        if secret.encode() in seen:
            raise ConfigError(name, f"secret for {key_name!r} is reused by another entry")
        seen.add(secret.encode())
        keys.append(ServiceKey(key_name, scopes, secret.encode()))
    return tuple(keys)


def _bearer(request: Request) -> str | None:
    """The one bearer credential; two Authorization headers are refused, never one picked."""
    headers = request.headers.getlist("authorization")
    if len(headers) > 1:
        raise ApiError(400, ErrorCode.BAD_REQUEST, "Send one Authorization header.")
    header = headers[0] if headers else ""
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return None
    return credential.strip()


def bearer_token(request: Request) -> str | None:
    return _bearer(request)


def find_service_key(keys: Sequence[ServiceKey], presented: str | None) -> ServiceKey | None:
    """Compare against every key in constant time, so timing reveals nothing."""
    if presented is None:
        return None
    candidate = presented.encode()
    found: ServiceKey | None = None
    for key in keys:
        if hmac.compare_digest(key.secret, candidate) and found is None:
            found = key
    return found


def authenticate_service(request: Request, keys: Sequence[ServiceKey], scope: str) -> Caller:
    """401 without a valid key, 403 `insufficient_scope` without the scope."""
    key = find_service_key(keys, _bearer(request))
    if key is None:
        raise ApiError(
            401, ErrorCode.UNAUTHORIZED, "A valid service key is required.", {"WWW-Authenticate": "Bearer"}
        )
    if scope not in key.scopes and "admin" not in key.scopes:
        raise ApiError(403, ErrorCode.INSUFFICIENT_SCOPE, f"This key lacks the {scope!r} scope.")
    return Caller(key.name, key.scopes)
