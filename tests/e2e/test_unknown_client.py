"""A trusted proxy that names no client: the client is "unknown", one shared client, limited, never banned.

Without this the client would be the proxy itself, which is exempt: nothing was ever limited.
Scoped IPv6 clients (`fe80::1%eth0`) are normalized, and no address makes a route answer 500.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import httpx
import pytest

import shared.http
from shared.http import UNKNOWN_CLIENT, UNKNOWN_CLIENTS, ClientIPResolver
from tests.e2e.conftest import PROXY_IP, Stack, assert_limited, fresh_email

LOGIN_MAX = 3
WRONG = "not the password at all, sorry"


def proxy_client(stack: Stack, headers: dict[str, str]) -> httpx.AsyncClient:
    """Requests straight from the trusted proxy's address, with exactly these headers."""
    transport = httpx.ASGITransport(app=stack.app, client=(PROXY_IP, 40000))
    return httpx.AsyncClient(transport=transport, base_url="https://auth.test", headers=headers)


def unknown_count(reason: str) -> float:
    value: float = UNKNOWN_CLIENTS.labels(reason)._value.get()
    return value


async def test_a_proxy_without_forwarded_for_is_limited_as_one_unknown_client(stack: Stack) -> None:
    before = unknown_count("no_forwarded_for"), unknown_count("malformed")
    statuses = []
    async with proxy_client(stack, {}) as bare, proxy_client(stack, {"X-Forwarded-For": "unknown"}) as named:
        for n in range(40):
            client = bare if n % 2 else named
            body = {"email": fresh_email("nobody"), "password": WRONG}
            statuses.append((await client.post("/api/auth/login", json=body)).status_code)
        limited = await bare.post("/api/auth/login", json={"email": fresh_email(), "password": WRONG})
    # Both kinds share one window: LOGIN_MAX answers, then 429, and never a ban (BAN_INTERVAL is 3).
    assert statuses[:LOGIN_MAX] == [401] * LOGIN_MAX, statuses
    assert set(statuses[LOGIN_MAX:]) == {429}, statuses
    assert_limited(limited, LOGIN_MAX)
    assert (await stack.check(ip=PROXY_IP))["banned"] is False
    after = unknown_count("no_forwarded_for"), unknown_count("malformed")
    assert after[0] - before[0] >= 20 and after[1] - before[1] >= 20
    # A real client behind the same proxy is unaffected.
    assert (await stack.login(stack.fresh_ip(), fresh_email("real"), WRONG)).status_code == 401


async def test_scoped_and_odd_client_addresses_never_answer_500(stack: Stack) -> None:
    forwarded = ("fe80::1%eth0", "[fe80::2%25en0]:443", "::ffff:198.51.100.9%x", "fe80::3%", "1.2.3.4%eth0")
    for n, value in enumerate(forwarded):
        async with proxy_client(stack, {"X-Forwarded-For": value}) as client:
            body = {"email": fresh_email("scoped"), "password": WRONG}
            login = await client.post("/api/auth/login", json=body)
            refresh = await client.post("/api/auth/refresh", json={"refresh_token": "x" * 40})
        if n < 3:  # scoped addresses lose their zone and count as that address
            assert login.status_code == 401, (value, login.text)
            assert refresh.status_code == 401, (value, refresh.text)
        else:  # not addresses at all: the shared unknown client (limited by the test above)
            assert login.status_code in (401, 429), (value, login.text)
            assert refresh.status_code in (401, 429), (value, refresh.text)


def test_the_warning_is_logged_once_a_minute_not_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    warnings: list[dict[str, Any]] = []

    class Recorder:
        def warning(self, event: str, **fields: Any) -> None:
            warnings.append({"event": event, **fields})

    monkeypatch.setattr(shared.http, "log", Recorder())
    monkeypatch.setitem(shared.http._unknown_log, "next", 0.0)
    resolver = ClientIPResolver((ipaddress.ip_network("10.0.0.0/8"),), 1)
    assert {resolver.resolve("10.0.0.1", []) for _ in range(50)} == {UNKNOWN_CLIENT}
    assert [w["event"] for w in warnings] == ["client_ip_unknown"]
    assert warnings[0]["reason"] == "no_forwarded_for"
