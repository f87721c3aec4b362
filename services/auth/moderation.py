"""The auth service's client for the moderation service.

Auth asks before it does expensive work and acts on the answer; it never
decides windows or scores itself. When moderation cannot answer within
MODERATION_TIMEOUT (or the circuit breaker is open), each check applies its
fail mode: `open` answers from an in-process limiter with the same limits plus
the last-known bans, `closed` refuses with 503 `moderation_unavailable`.
Violation reports never block a request: they wait in a bounded buffer.
Bans arrive through the change feed, polled in the background, so
`is_banned` answers from memory without a network call.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import inspect
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json import dumps
from types import MappingProxyType
from typing import Any, Literal

import httpx
import structlog
from httpx_aiohttp import AiohttpTransport
from prometheus_client import Counter, Histogram

from shared.config import ConfigError, Env, IPNetwork, exempt_networks
from shared.errors import ApiError, ErrorCode
from shared.http import MIN_SERVICE_SECRET_BYTES
from shared.moderation.engine import Engine, Event
from shared.moderation.policy import EVENT_TYPES, BanPolicy, Limits, Policy, load_limits
from shared.moderation.store_memory import MemoryStore
from shared.moderation.subjects import UNKNOWN_CLIENT, InvalidSubject, client_address, user_subject
from shared.timefmt import iso_from_ms, parse_iso_ms

log = structlog.get_logger("authgate.moderation_client")

LATENCY = Histogram(
    "authgate_moderation_call_duration_seconds",
    "Latency of auth's calls to moderation on the request path",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0),
)
CALLS = Counter("authgate_moderation_calls_total", "Calls to moderation by result", ["result"])

FailMode = Literal["open", "closed"]
Transport = Literal["aiohttp", "httpx"]
# A failed login shares the login check's fail mode.
CHECKS = tuple(t for t in EVENT_TYPES if t != "login_failed")
DEFAULT_FAIL_MODES: Mapping[str, FailMode] = MappingProxyType(
    {"login": "open", "register": "closed", "refresh": "open"}
)
POOL = httpx.Limits(max_connections=100, max_keepalive_connections=100)
UserBanCallback = Callable[[str, "BanInfo"], Awaitable[None] | None]


def account_subject(email_normalized: str, key: bytes) -> str:
    """`account:<hex HMAC-SHA256>`: moderation throttles an account without ever seeing its email."""
    digest = hmac.new(key, email_normalized.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"account:{digest}"


# Settings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModerationClientSettings:
    url: str
    api_key: str | None
    timeout_ms: int = 200
    fail_modes: Mapping[str, FailMode] = field(default_factory=lambda: DEFAULT_FAIL_MODES)
    limits: Limits = field(default_factory=Limits)
    exempt: tuple[IPNetwork, ...] = ()
    poll_interval_ms: int = 500
    breaker_failures: int = 5
    breaker_reset_ms: int = 5000
    buffer_size: int = 1000
    transport: Transport = "aiohttp"

    def fail_mode(self, event_type: str) -> FailMode:
        check = "login" if event_type == "login_failed" else event_type
        return self.fail_modes.get(check, "open")


def parse_fail_modes(name: str, value: str | None) -> Mapping[str, FailMode]:
    modes: dict[str, FailMode] = dict(DEFAULT_FAIL_MODES)
    for entry in (value or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        check, sep, mode = (part.strip() for part in entry.partition("="))
        if not sep or check not in CHECKS:
            raise ConfigError(
                name, f"entries look like check=open|closed with a check in {', '.join(CHECKS)}"
            )
        if mode not in ("open", "closed"):
            raise ConfigError(name, f"mode for {check!r} must be open or closed, got {mode!r}")
        modes[check] = "open" if mode == "open" else "closed"
    return MappingProxyType(modes)


def load_moderation_client_settings(env: Env, development: bool) -> ModerationClientSettings:
    """Called from the auth service's settings; every variable checked here, once."""
    url = env.string("MODERATION_URL")
    if url is None:
        if not development:
            raise ConfigError("MODERATION_URL", "is required outside development")
        url = f"http://127.0.0.1:{env.integer('MODERATION_PORT', 3081, minimum=1)}"
    if not url.startswith(("http://", "https://")):
        raise ConfigError("MODERATION_URL", f"must be an http(s) URL, got {url[:64]!r}")
    api_key = env.secret("MODERATION_API_KEY")
    if api_key is None and not development:
        raise ConfigError("MODERATION_API_KEY", "is required outside development (a report key)")
    if api_key is not None and len(api_key.encode()) < MIN_SERVICE_SECRET_BYTES:
        raise ConfigError("MODERATION_API_KEY", f"must be at least {MIN_SERVICE_SECRET_BYTES} bytes")
    return ModerationClientSettings(
        url=url.rstrip("/"),
        api_key=api_key,
        timeout_ms=env.duration_ms("MODERATION_TIMEOUT", "200"),
        fail_modes=parse_fail_modes("MODERATION_FAIL_MODE", env.string("MODERATION_FAIL_MODE")),
        limits=load_limits(env),
        exempt=exempt_networks(env),
    )


# Answers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BanInfo:
    subject: str
    reason: str
    expires_at_ms: int

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.expires_at_ms / 1000, UTC)

    def expires_at_iso(self) -> str:
        return iso_from_ms(self.expires_at_ms)

    def retry_after(self, now_ms: int | None = None) -> int:
        now = _wall_ms() if now_ms is None else now_ms
        return max(0, -(-(self.expires_at_ms - now) // 1000))

    def active(self, now_ms: int | None = None) -> bool:
        return self.expires_at_ms > (_wall_ms() if now_ms is None else now_ms)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> BanInfo:
        return cls(str(data["subject"]), str(data["reason"]), parse_iso_ms(str(data["expires_at"])))


@dataclass(frozen=True)
class Decision:
    """What auth acts on: `allowed`, and for a refusal why and for how long."""

    allowed: bool
    retry_after: int
    limit: int
    remaining: int
    score: int
    ban: BanInfo | None = None
    degraded: bool = False  # answered locally because moderation was unavailable


def _wall_ms() -> int:
    return int(time.time() * 1000)


class ModerationUnavailable(Exception):
    """No usable answer: timeout, connection error, 5xx, or an open circuit."""


class ModerationRejected(Exception):
    """Moderation answered 4xx: our request or key is wrong; retrying will not help."""


# Circuit breaker ---------------------------------------------------------------------------


class CircuitBreaker:
    """Closed → open after `failures` in a row; after `reset_ms` one probe is let through."""

    def __init__(self, failures: int, reset_ms: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = failures
        self.reset_s = reset_ms / 1000
        self.clock = clock
        self._count = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> Literal["closed", "open", "half_open"]:
        if self._opened_at is None:
            return "closed"
        return "half_open" if self._probing else "open"

    def allow(self) -> bool:
        if self._opened_at is None:
            return True
        if self._probing or self.clock() - self._opened_at < self.reset_s:
            return False
        self._probing = True
        return True

    def success(self) -> None:
        if self._opened_at is not None:
            log.info("moderation_circuit_closed")
        self._count = 0
        self._opened_at = None
        self._probing = False

    def failure(self) -> None:
        self._count += 1
        if self._probing or (self._opened_at is None and self._count >= self.failures):
            if self._opened_at is None:
                log.warning("moderation_circuit_open", failures=self._count)
            self._opened_at = self.clock()
        self._probing = False


# The client --------------------------------------------------------------------------------


@dataclass
class ClientStats:
    buffered: int = 0
    dropped: int = 0
    delivered: int = 0
    degraded_answers: int = 0
    feed_resets: int = 0


class ModerationClient:
    """One per process: a shared HTTP client, a ban cache, a report buffer and their tasks."""

    def __init__(self, settings: ModerationClientSettings, transport: httpx.AsyncBaseTransport | None = None):
        self.settings = settings
        self.breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_reset_ms)
        self.stats = ClientStats()
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._wire: httpx.AsyncBaseTransport | None = None  # the client's transport, set with it
        self._bans: dict[str, BanInfo] = {}
        self._cursor: str | None = None
        self._synced_at: float | None = None
        self._callbacks: list[UserBanCallback] = []
        self._callback_tasks: set[asyncio.Task[None]] = set()
        self._buffer: deque[tuple[str, dict[str, Any]]] = deque()
        self._wake_flusher = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        fallback = Policy(limits=settings.limits, bans=BanPolicy(enabled=False), exempt=settings.exempt)
        self._local = Engine(MemoryStore(fallback.bans), fallback)
        self._feed_down_logged = False
        self._urls: dict[str, httpx.URL] = {}
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

    async def start(self) -> None:
        """Open the HTTP client and start the feed poller and report flusher; never blocks on moderation."""
        if self._http is None:
            self._http = self._make_http()
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._poll_bans(), name="moderation-ban-feed"),
                asyncio.create_task(self._flush_reports(), name="moderation-report-flusher"),
            ]

    async def aclose(self, flush_timeout_s: float = 1.0) -> None:
        """Try briefly to deliver buffered reports, then stop the tasks and close the client."""
        if self._buffer and self._http is not None:
            with contextlib.suppress(TimeoutError, ModerationUnavailable):
                async with asyncio.timeout(flush_timeout_s):
                    await self._drain()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._callback_tasks:
            await asyncio.wait(set(self._callback_tasks), timeout=flush_timeout_s)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # HTTP -------------------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        timeout_s: float,
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
                body = response.json() if response.content else {}
        except (httpx.HTTPError, TimeoutError, OSError, ValueError) as exc:
            raise ModerationUnavailable(type(exc).__name__) from exc
        if response.status_code >= 500:
            raise ModerationUnavailable(f"HTTP {response.status_code} {body.get('code', '')}")
        if response.status_code >= 400:
            log.error("moderation_rejected", path=path, status=response.status_code, code=body.get("code"))
            raise ModerationRejected(str(body.get("code", response.status_code)))
        if not isinstance(body, dict):
            raise ModerationUnavailable("unexpected body")
        return body

    async def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """A request on the request path: bounded by MODERATION_TIMEOUT and guarded by the breaker."""
        if not self.breaker.allow():
            CALLS.labels("circuit_open").inc()
            raise ModerationUnavailable("circuit open")
        started = time.perf_counter()
        try:
            result = await self._request("POST", path, json=body, timeout_s=self.settings.timeout_ms / 1000)
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

    # Checks -----------------------------------------------------------------------------------

    async def event(
        self,
        event_type: str,
        *,
        ip: str,
        user_id: str | None = None,
        account: str | None = None,
        device_trusted: bool = False,
        release: bool = False,
    ) -> Decision:
        """Count an event and answer; on failure apply the check's fail mode (may raise 503)."""
        body: dict[str, Any] = {"type": event_type, "ip": ip}
        if user_id is not None:
            body["user_id"] = user_id
        if account is not None:
            body["account"] = account
        if device_trusted:
            body["device_trusted"] = True
        if release:
            body["release"] = True
        try:
            answer = await self._call("/v1/events", body)
        except (ModerationUnavailable, ModerationRejected) as exc:
            log.warning("moderation_degraded", event_type=event_type, error=str(exc))
            return await self._fallback(body, event_type)
        ban = BanInfo.from_api(answer["ban"]) if answer.get("ban") else None
        if ban is not None:
            await self._learn(ban)
        return Decision(
            allowed=bool(answer["allowed"]),
            retry_after=int(answer["retry_after"]),
            limit=int(answer["limit"]),
            remaining=int(answer["remaining"]),
            score=int(answer["score"]),
            ban=ban,
        )

    async def _fallback(self, body: dict[str, Any], event_type: str) -> Decision:
        if event_type == "login_failed":
            self._enqueue("/v1/events", body)  # a fact moderation must still learn
        if self.settings.fail_mode(event_type) == "closed":
            raise ApiError(
                503,
                ErrorCode.MODERATION_UNAVAILABLE,
                "Abuse protection is unavailable; retry shortly.",
                {"Retry-After": str(max(1, self.settings.breaker_reset_ms // 1000))},
            )
        self.stats.degraded_answers += 1
        ip = str(body["ip"])
        try:
            client_address(ip, self.settings.exempt)
        except InvalidSubject:  # moderation refused it too (422): count it as the unknown client
            log.warning("client_ip_unusable", event_type=event_type)
            ip = UNKNOWN_CLIENT
        local = await self._local.event(
            Event(
                type=event_type,
                ip=ip,
                user_id=body.get("user_id"),
                account=body.get("account"),
                device_trusted=bool(body.get("device_trusted", False)),
                release=bool(body.get("release", False)),
            ),
            "local",
        )
        ban = self.is_banned(ip=body["ip"], user_id=body.get("user_id"))
        if ban is not None:
            return Decision(False, ban.retry_after(), local.limit, 0, 0, ban, degraded=True)
        return Decision(
            local.allowed, local.retry_after, local.limit, local.remaining, 0, None, degraded=True
        )

    def report_violation(
        self,
        violation_type: str,
        *,
        ip: str | None = None,
        user_id: str | None = None,
        score: int | None = None,
    ) -> None:
        """Queue a violation report; the flusher delivers it. Never blocks, never raises."""
        body: dict[str, Any] = {"type": violation_type}
        if ip is not None:
            body["ip"] = ip
        if user_id is not None:
            body["user_id"] = user_id
        if score is not None:
            body["score"] = score
        self._enqueue("/v1/violations", body)

    def _enqueue(self, path: str, body: dict[str, Any]) -> None:
        if len(self._buffer) >= self.settings.buffer_size:
            self._buffer.popleft()
            self.stats.dropped += 1
            log.warning("moderation_report_dropped", dropped=self.stats.dropped)
        self._buffer.append((path, body))
        self.stats.buffered = len(self._buffer)
        self._wake_flusher.set()

    async def _drain(self) -> None:
        while self._buffer:
            path, body = self._buffer[0]
            with contextlib.suppress(ModerationRejected):  # it never will be accepted: drop it
                await self._call(path, body)
            self._buffer.popleft()
            self.stats.buffered = len(self._buffer)
            self.stats.delivered += 1

    async def _flush_reports(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._wake_flusher.wait()
            self._wake_flusher.clear()
            with contextlib.suppress(ModerationUnavailable):
                await self._drain()

    # Ban cache --------------------------------------------------------------------------------

    def on_user_ban(self, callback: UserBanCallback) -> None:
        """Run `callback(user_id, ban)` for every user ban seen (feed, reload or event answer)."""
        self._callbacks.append(callback)

    @property
    def has_bans(self) -> bool:
        """Whether any ban is cached at all: /verify skips the client-IP work when none is."""
        return bool(self._bans)

    def is_banned(self, *, ip: str | None = None, user_id: str | None = None) -> BanInfo | None:
        """The last-known ban of this user or address; memory only, no network call."""
        if not self._bans:  # the usual case, on every /verify
            return None
        subjects: list[str] = []
        try:
            if user_id is not None:
                subjects.append(user_subject(user_id))
            if ip is not None:
                client = client_address(ip, self.settings.exempt)
                if not client.exempt and client.bannable:
                    subjects.extend(client.subjects)
        except InvalidSubject:
            return None
        now = _wall_ms()
        found = [ban for s in subjects if (ban := self._bans.get(s)) is not None and ban.active(now)]
        return max(found, key=lambda b: b.expires_at_ms) if found else None

    def ban_cache_age(self) -> float | None:
        """Seconds since the ban cache last caught up with moderation; None before the first sync."""
        return None if self._synced_at is None else time.monotonic() - self._synced_at

    async def _learn(self, ban: BanInfo) -> None:
        """Cache a ban; a new user ban runs the callbacks in the background (never on a request's time)."""
        known = self._bans.get(ban.subject)
        self._bans[ban.subject] = ban
        if ban.subject.startswith("user:") and (known is None or known.expires_at_ms != ban.expires_at_ms):
            task = asyncio.create_task(self._notify(ban.subject.removeprefix("user:"), ban))
            self._callback_tasks.add(task)
            task.add_done_callback(self._callback_tasks.discard)

    async def _notify(self, user_id: str, ban: BanInfo) -> None:
        for callback in self._callbacks:
            try:
                result = callback(user_id, ban)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("user_ban_callback_failed", user_id=user_id)

    async def _reload(self, cursor: str | None) -> str:
        """Replace the cache with GET /v1/bans; resume the feed from `cursor` (or the list's)."""
        fresh: dict[str, BanInfo] = {}
        page_cursor: str | None = None
        resume = cursor
        while True:
            params = {"limit": "1000"} | ({"cursor": page_cursor} if page_cursor else {})
            page = await self._request("GET", "/v1/bans", params=params, timeout_s=self._poll_timeout())
            if resume is None:
                resume = str(page["feed_cursor"])
            for item in page["bans"]:
                ban = BanInfo.from_api(item)
                fresh[ban.subject] = ban
            page_cursor = page.get("next")
            if not page_cursor:
                break
        previous, self._bans = self._bans, {}
        for ban in fresh.values():
            if ban.subject in previous and previous[ban.subject].expires_at_ms == ban.expires_at_ms:
                self._bans[ban.subject] = ban
            else:
                await self._learn(ban)
        return resume

    def _poll_timeout(self) -> float:
        return max(1.0, self.settings.timeout_ms / 1000)

    async def sync_bans(self) -> None:
        """One catch-up step of the feed (the poller calls this; tests may too)."""
        if self._cursor is None:
            self._cursor = await self._reload(None)
        else:
            page = await self._request(
                "GET", "/v1/bans/changes", params={"since": self._cursor}, timeout_s=self._poll_timeout()
            )
            if page.get("reset"):
                self.stats.feed_resets += 1
                self._cursor = await self._reload(str(page["cursor"]))
            else:
                for change in page["changes"]:
                    if change["action"] == "ban" and change.get("expires_at"):
                        await self._learn(BanInfo.from_api(change))
                    else:
                        self._bans.pop(str(change["subject"]), None)
                self._cursor = str(page["cursor"])
        now = _wall_ms()
        for subject in [s for s, b in self._bans.items() if not b.active(now)]:
            del self._bans[subject]
        self._synced_at = time.monotonic()

    async def _poll_bans(self) -> None:
        interval = min(self.settings.poll_interval_ms, 500) / 1000
        while True:
            try:
                await self.sync_bans()
                if self._feed_down_logged:
                    log.info("moderation_feed_recovered")
                self._feed_down_logged = False
            except (ModerationUnavailable, ModerationRejected, KeyError, TypeError, ValueError) as exc:
                if not self._feed_down_logged:
                    log.warning("moderation_feed_unavailable", error=str(exc))
                self._feed_down_logged = True
            await asyncio.sleep(interval)
