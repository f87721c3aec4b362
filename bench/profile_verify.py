"""Where /verify's time goes with the token cache off: cProfile of the endpoint in this process.

The endpoint is driven through its ASGI interface with distinct tokens (so no cache
could help even if it were on), a loaded revocation view and no bans; uvicorn's
own HTTP parsing is not in this profile (the raw ASGI baseline measures that).

    .venv/bin/python -m bench.profile_verify [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import secrets
import time
from collections.abc import MutableMapping
from typing import Any

from bench.profiles import summary
from services.auth.api.verify import BanNotice, VerifyEndpoint
from services.auth.keys import KeyRing
from services.auth.revocations import RevocationCache
from services.auth.session_cookie import SessionCookieTokens
from services.auth.tokens import AccessTokens
from shared.http import ClientIPResolver

Message = MutableMapping[str, Any]
PROFILE_COMMAND = ".venv/bin/python -m bench.profile_verify"


class NoBans:
    has_bans = False

    def ban_for(self, ip: str | None, user_id: str | None) -> BanNotice | None:
        return None


def signer() -> AccessTokens:
    return AccessTokens(KeyRing("HS256", secrets.token_bytes(32)), "authgate", "librechat", 900_000)


def endpoint(tokens: AccessTokens, cache_size: int) -> VerifyEndpoint:
    """A /verify endpoint as the service builds it (HS256, a loaded revocation view)."""
    revocations = RevocationCache(None, poll_interval_s=1.0, stale_grace_s=3600.0)  # type: ignore[arg-type]
    revocations._last_success = time.monotonic()
    cookies = SessionCookieTokens(secrets.token_hex(32), "authgate", 300)
    verify = VerifyEndpoint(
        tokens,
        revocations,
        NoBans,
        ClientIPResolver(()),
        "X-Auth-",
        0.0,
        cache_size,
        cookies,
        "authgate_session",
    )
    return verify


def scopes(tokens: AccessTokens, count: int) -> list[dict[str, Any]]:
    """`count` distinct valid tokens, each in the scope uvicorn would hand the endpoint."""
    out = []
    for n in range(count):
        issued = tokens.issue(
            user_id=f"{n:024x}",
            session_id=secrets.token_urlsafe(16),
            email=f"u{n}@example.com",
            username=f"u{n}",
            role="USER",
            provider="local",
        )
        headers = [(b"host", b"127.0.0.1"), (b"authorization", b"Bearer " + issued.token.encode())]
        out.append(
            {
                "type": "http",
                "method": "GET",
                "path": "/verify",
                "query_string": b"",
                "headers": headers,
                "client": ("127.0.0.1", 5000),
            }
        )
    return out


async def drive(verify: VerifyEndpoint, all_scopes: list[dict[str, Any]], requests: int) -> float:
    """Call the endpoint `requests` times; seconds per request."""

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    statuses: list[int] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    started = time.perf_counter()
    for n in range(requests):
        await verify(all_scopes[n % len(all_scopes)], receive, send)
    elapsed = time.perf_counter() - started
    if set(statuses) != {200}:
        raise RuntimeError(f"/verify answered {sorted(set(statuses))}")
    return elapsed / requests


def profile(requests: int) -> tuple[float, float, pstats.Stats]:
    """(us per request with the cache off, with cache hits, the cache-off profile)."""
    tokens = signer()
    verify = endpoint(tokens, 0)
    distinct = scopes(tokens, 2000)

    def run(target: VerifyEndpoint, pool: list[dict[str, Any]]) -> float:
        return asyncio.run(drive(target, pool, requests))

    run(verify, distinct)  # warm-up
    off = run(verify, distinct)
    hit = run(endpoint(tokens, 10_000), distinct[:1])
    profiler = cProfile.Profile()
    profiler.enable()
    run(verify, distinct)
    profiler.disable()
    return off * 1e6, hit * 1e6, pstats.Stats(profiler, stream=io.StringIO())


def section(requests: int) -> str:
    """The report's section: where a cache-off /verify spends its CPU, in this process."""
    off, hit, stats = profile(requests)
    return (
        "### Where a cache-off /verify spends its time\n\n"
        f"`{PROFILE_COMMAND}`: the endpoint driven in-process through its ASGI interface with"
        f" {requests:,} requests over 2,000 distinct valid HS256 tokens (cache off) costs **{off:.1f} us**"
        f" per request; with cache hits {hit:.1f} us. uvicorn's HTTP parsing and the socket work are"
        " not in it (the raw ASGI baseline carries those). cProfile of the cache-off run"
        " (its overhead inflates every figure about equally):\n\n" + summary(stats, requests, "request")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    print(section(args.requests))


if __name__ == "__main__":
    main()
