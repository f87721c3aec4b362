"""The HTTP hop to moderation: one shared client, bounded calls, the breaker, and key refusals.

A call that fails in a way another replica may not (no connection, a timeout, 502/503/504) is
sent once more, through the same URL (the load balancer picks a replica), with the same
`Idempotency-Key`: moderation counts an event once per key, so the retry cannot count twice.
The key is the request id plus a nonce of the call: request ids may come from the client
(`X-Request-Id`), and a key a client could repeat would let its flood count once.

A 401/403 is not an outage: moderation answered, and refuses auth's key. It is counted
on its own, shown by /readyz as `misconfigured`, and logged as one error line a minute.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Mapping
from json import dumps
from typing import Any

import httpx
import structlog
from httpx_aiohttp import AiohttpTransport

from services.auth.moderation_client.answers import (
    ModerationMisconfigured,
    ModerationRejected,
    ModerationUnavailable,
)
from services.auth.moderation_client.breaker import CircuitBreaker
from services.auth.moderation_client.metrics import CALLS, LATENCY, ClientStats
from services.auth.moderation_client.settings import ModerationClientSettings

log = structlog.get_logger("authgate.moderation_client")
POOL = httpx.Limits(max_connections=100, max_keepalive_connections=100)
MISCONFIGURED_LOG_EVERY_S = 60.0
# How long one refusal keeps /readyz saying `misconfigured`: a missing scope shows only on
# the events it covers, so a success elsewhere does not clear it.
MISCONFIGURED_FOR_S = 300.0
RETRY_STATUSES = frozenset({502, 503, 504})


class ModerationTransport:
    def __init__(
        self,
        settings: ModerationClientSettings,
        stats: ClientStats,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.stats = stats
        self.clock = clock
        self.breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_reset_ms, clock)
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._wire: httpx.AsyncBaseTransport | None = None  # the client's transport, set with it
        self._urls: dict[str, httpx.URL] = {}
        self._refused_at: float | None = None
        self._refusal_logged_at: float | None = None
        # Complete request headers (Host included), so each request is built without httpx's merging.
        host = httpx.URL(settings.url).netloc
        self._raw_headers: list[tuple[bytes, bytes]] = [
            (b"host", host),
            (b"accept", b"application/json"),
            (b"content-type", b"application/json"),
        ]
        if settings.api_key is not None:
            self._raw_headers.append((b"authorization", f"Bearer {settings.api_key}".encode()))

    # Lifecycle ------------------------------------------------------------------------------

    def _make_http(self) -> httpx.AsyncClient:
        """The process's one client, over the httpx-aiohttp transport unless told otherwise.

        Measured here (bench/bench_moderation.py): httpx's default transport serves the hop at
        about a tenth of moderation's rate, the aiohttp transport at well over half.
        """
        transport = self._transport
        if transport is None:
            if self.settings.transport == "aiohttp":
                transport = AiohttpTransport(limits=POOL)
            else:
                transport = httpx.AsyncHTTPTransport(limits=POOL)
        self._wire = transport
        return httpx.AsyncClient(
            base_url=self.settings.url,
            transport=transport,
            timeout=httpx.Timeout(max(self.settings.timeout_ms / 1000, 0.001)),
        )

    def open(self) -> None:
        if self._http is None:
            self._http = self._make_http()

    @property
    def is_open(self) -> bool:
        return self._http is not None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # Key refusals ---------------------------------------------------------------------------

    @property
    def misconfigured(self) -> bool:
        """Whether moderation refused auth's key (401/403) within MISCONFIGURED_FOR_S."""
        return self._refused_at is not None and self.clock() - self._refused_at < MISCONFIGURED_FOR_S

    def _refused(self, path: str, status: int, code: object) -> None:
        now = self.clock()
        self._refused_at = now
        self.stats.config_errors += 1
        if self._refusal_logged_at is None or now - self._refusal_logged_at >= MISCONFIGURED_LOG_EVERY_S:
            self._refusal_logged_at = now
            log.error(
                "moderation_misconfigured",
                status=status,
                code=code,
                path=path,
                refusals=self.stats.config_errors,
                detail="moderation refuses MODERATION_API_KEY (wrong key or missing scope); "
                "checks apply MODERATION_FAIL_MODE until it is fixed",
            )

    # Calls ----------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        timeout_s: float,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """One call on the shared client's transport.

        A prebuilt `httpx.Request` sent straight to the transport skips AsyncClient's per-call
        layers (URL and header merging, auth flow, redirects, cookies, hooks), none of which
        this client uses: about a third of its CPU per call.
        """
        if self._http is None or self._wire is None:
            self._http = self._make_http()
        wire = self._wire
        assert wire is not None
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx.URL(self.settings.url + path)
        if params:
            url = url.copy_merge_params(params)
        content = b"" if json is None else dumps(json, separators=(",", ":")).encode()
        raw_headers = self._raw_headers
        if json is not None:
            raw_headers = [*raw_headers, (b"content-length", str(len(content)).encode())]
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        if request_id:  # one request id across auth and moderation logs
            raw_headers = [*raw_headers, (b"x-request-id", str(request_id).encode("latin-1", "replace"))]
        if idempotency_key is not None:
            raw_headers = [*raw_headers, (b"idempotency-key", idempotency_key.encode("ascii"))]
        request = httpx.Request(
            method,
            url,
            headers=raw_headers,
            stream=httpx.ByteStream(content),
            extensions={"timeout": httpx.Timeout(timeout_s).as_dict()},
        )
        request.headers.encoding = "ascii"  # known; spares httpx a per-request scan of every header
        try:
            async with asyncio.timeout(timeout_s):
                response = await wire.handle_async_request(request)
                try:
                    await response.aread()
                finally:
                    await response.aclose()
        except (httpx.TransportError, TimeoutError, OSError) as exc:
            raise ModerationUnavailable(type(exc).__name__, retryable=True) from exc
        except httpx.HTTPError as exc:
            raise ModerationUnavailable(type(exc).__name__) from exc
        status = response.status_code
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = None  # e.g. a load balancer's HTML error page
        if status in RETRY_STATUSES:
            code = body.get("code", "") if isinstance(body, dict) else ""
            raise ModerationUnavailable(f"HTTP {status} {code}", retryable=True)
        if not isinstance(body, dict):
            raise ModerationUnavailable(f"HTTP {status}, unexpected body")
        if status >= 500:
            raise ModerationUnavailable(f"HTTP {status} {body.get('code', '')}")
        if response.status_code in (401, 403):
            self._refused(path, response.status_code, body.get("code"))
            raise ModerationMisconfigured(str(body.get("code", response.status_code)))
        if response.status_code >= 400:
            log.error("moderation_rejected", path=path, status=response.status_code, code=body.get("code"))
            raise ModerationRejected(str(body.get("code", response.status_code)))
        return body

    async def call(
        self, path: str, body: dict[str, Any], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """A request on the request path, guarded by the breaker; retried once when retryable.

        Each attempt is bounded by MODERATION_TIMEOUT, so a call takes at most twice that.
        The breaker counts the call, not the attempts: a retry another replica answers is a success.
        """
        if not self.breaker.allow():
            CALLS.labels("circuit_open").inc()
            raise ModerationUnavailable("circuit open")
        key = idempotency_key or new_idempotency_key()
        timeout_s = self.settings.timeout_ms / 1000
        started = time.perf_counter()
        try:
            try:
                result = await self.request("POST", path, json=body, timeout_s=timeout_s, idempotency_key=key)
            except ModerationUnavailable as first:
                if not first.retryable:
                    raise
                CALLS.labels("retried").inc()
                log.info("moderation_retry", path=path, error=str(first))
                result = await self.request("POST", path, json=body, timeout_s=timeout_s, idempotency_key=key)
        except ModerationUnavailable:
            self.breaker.failure()
            CALLS.labels("unavailable").inc()
            raise
        except ModerationRejected:
            self.breaker.success()  # it answered; the fault is ours
            CALLS.labels("rejected").inc()
            raise
        finally:
            LATENCY.observe(time.perf_counter() - started)
        self.breaker.success()
        CALLS.labels("ok").inc()
        return result


def new_idempotency_key() -> str:
    """The request id (for the logs) plus a nonce of this call (so no client can repeat it)."""
    request_id = str(structlog.contextvars.get_contextvars().get("request_id") or "")
    nonce = secrets.token_hex(8)
    prefix = request_id[:100] if request_id else "call"
    return f"{prefix}.{nonce}"
