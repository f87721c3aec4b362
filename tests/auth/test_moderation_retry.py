"""Auth retries a failed moderation call once, and only once, with the same Idempotency-Key.

A tiny real HTTP server sits in front of a real moderation process and fails the calls it is
told to (an answer 502/503/504/500, or a connection closed without an answer); the others it
forwards. What it saw is what the client sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from harness import free_port
from services.auth.moderation_client import ModerationClient
from tests.auth.test_moderation_client import settings_for
from tests.moderation.conftest import Moderation, fresh_ip, launch

# An HTTP status to answer (JSON, as moderation does), "nginx" (502 with nginx's HTML page), or
# "drop" (close the connection without an answer).
Failure = int | str


@dataclass
class FlakyFront:
    """Fails the first `failures` calls as told, forwards the rest to moderation."""

    upstream: str
    failures: list[Failure]
    port: int = field(default_factory=free_port)
    keys: list[str | None] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await self.serve(reader, writer)
        writer.close()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.keys.append(headers.get("idempotency-key"))
            failure = self.failures.pop(0) if self.failures else None
            if failure == "drop":
                writer.close()
                return
            if isinstance(failure, int):
                payload = b'{"code":"store_unavailable","message":"x"}'
                status = failure
            elif failure == "nginx":
                payload = b"<html><head><title>502 Bad Gateway</title></head></html>"
                status = 502
            else:
                forward = {k: v for k, v in headers.items() if k not in ("host", "content-length")}
                async with httpx.AsyncClient(base_url=self.upstream) as client:
                    answer = await client.request(method, path, content=body, headers=forward)
                payload, status = answer.content, answer.status_code
            writer.write(
                f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
                f"content-length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
            await writer.drain()

    async def __aenter__(self) -> FlakyFront:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        await self.server.wait_closed()


@pytest.fixture(scope="module")
def moderation(work_dir: Path) -> Iterator[Moderation]:
    service = launch(work_dir, "memory", None)
    try:
        yield service
    finally:
        service.server.stop()


@contextlib.asynccontextmanager
async def client_through(front: FlakyFront, transport: str) -> AsyncIterator[ModerationClient]:
    settings = settings_for(f"http://127.0.0.1:{front.port}", transport=transport, breaker_failures=1)
    moderation_client = ModerationClient(settings)
    try:
        yield moderation_client
    finally:
        await moderation_client.aclose(flush_timeout_s=0.1)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
@pytest.mark.parametrize("failure", [502, 503, 504, "nginx", "drop"])
async def test_one_failed_call_is_retried_with_the_same_key(
    moderation: Moderation, failure: Failure, transport: str
) -> None:
    async with FlakyFront(moderation.url, [failure]) as front, client_through(front, transport) as client:
        decision = await client.event("login", ip=fresh_ip())
        assert not decision.degraded and decision.allowed and decision.remaining == 2
        assert len(front.keys) == 2 and front.keys[0] is not None and front.keys[0] == front.keys[1]
        assert client.breaker.state == "closed" and client.stats.degraded_answers == 0


async def test_the_retry_counts_once_when_the_first_call_was_counted(moderation: Moderation) -> None:
    """The first call reached moderation and counted; its answer was lost: the retry counts nothing."""
    ip = fresh_ip()
    async with FlakyFront(moderation.url, []) as front, client_through(front, "aiohttp") as client:
        first = await client.event("login", ip=ip)
        assert first.remaining == 2
        key = front.keys[0]
        assert key is not None
        async with httpx.AsyncClient(base_url=moderation.url) as raw:  # the same call replayed
            headers = {"authorization": f"Bearer {client.settings.api_key}", "idempotency-key": key}
            again = await raw.post("/v1/events", json={"type": "login", "ip": ip}, headers=headers)
        assert again.json()["remaining"] == 2
        assert (await client.event("login", ip=ip)).remaining == 1


@pytest.mark.parametrize("failure", [502, "nginx", "drop"])
async def test_only_once(moderation: Moderation, failure: Failure) -> None:
    async with FlakyFront(moderation.url, [failure] * 5) as front, client_through(front, "aiohttp") as client:
        decision = await client.event("login", ip=fresh_ip())
        assert decision.degraded  # the fail mode (open by default) after two attempts
        assert len(front.keys) == 2 and front.keys[0] == front.keys[1]


async def test_a_500_is_not_retried(moderation: Moderation) -> None:
    async with FlakyFront(moderation.url, [500]) as front, client_through(front, "aiohttp") as client:
        assert (await client.event("login", ip=fresh_ip())).degraded
        assert len(front.keys) == 1


async def test_each_call_has_its_own_key(moderation: Moderation) -> None:
    async with FlakyFront(moderation.url, []) as front, client_through(front, "aiohttp") as client:
        for _ in range(3):
            await client.event("refresh", ip=fresh_ip())
        assert len(set(front.keys)) == 3


async def test_an_unanswered_login_failure_is_reported_later_with_the_same_key(
    moderation: Moderation,
) -> None:
    """Both attempts may have counted before their answers were lost: the report counts at most once."""
    async with FlakyFront(moderation.url, [502, 502]) as front, client_through(front, "aiohttp") as client:
        account = "account:" + "ef" * 32
        await client.event("login_failed", ip=fresh_ip(), account=account)
        assert len(client.reports) == 1
        client.breaker.success()  # breaker_failures=1 here: let the delivery through
        await client.reports.drain()
        assert len(front.keys) == 3 and len(set(front.keys)) == 1
