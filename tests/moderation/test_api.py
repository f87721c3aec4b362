"""The HTTP API of a running moderation process, once over each store."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from typing import Any

import httpx
import pytest

from tests.moderation.conftest import (
    ADMIN_SECRET,
    AUTH_SECRET,
    EDGE_SECRET,
    READER_SECRET,
    Moderation,
    body_of,
    fresh_account,
    fresh_ip,
    fresh_ipv6,
    fresh_user,
)


async def event(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/events", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


# Authentication and scopes -------------------------------------------------------------------


@pytest.mark.parametrize("secret", [None, "not-a-key", ADMIN_SECRET + "x"])
async def test_every_v1_route_needs_a_valid_key(moderation: Moderation, secret: str | None) -> None:
    async with moderation.client(secret) as client:
        calls = [
            client.post("/v1/events", json={"type": "login", "ip": "192.0.2.1"}),
            client.post("/v1/violations", json={"type": "login", "ip": "192.0.2.1"}),
            client.get("/v1/bans/check", params={"ip": "192.0.2.1"}),
            client.get("/v1/bans"),
            client.post("/v1/bans", json={"subject": "ip:192.0.2.1", "reason": "x", "duration_seconds": 5}),
            client.delete("/v1/bans/ip:192.0.2.1"),
            client.get("/v1/bans/changes"),
            client.get("/v1/audit"),
        ]
        for response in await asyncio.gather(*calls):
            assert response.status_code == 401
            assert body_of(response)["code"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"


async def test_report_keys_cannot_ban_unban_or_read_audit(moderation: Moderation) -> None:
    async with moderation.client(AUTH_SECRET) as client:
        ban = await client.post(
            "/v1/bans", json={"subject": "ip:192.0.2.1", "reason": "x", "duration_seconds": 5}
        )
        unban = await client.delete("/v1/bans/ip:192.0.2.1")
        trail = await client.get("/v1/audit")
    for response in (ban, unban, trail):
        assert response.status_code == 403 and body_of(response)["code"] == "insufficient_scope"


async def test_keys_report_only_their_event_types(moderation: Moderation) -> None:
    async with moderation.client(READER_SECRET) as reader, moderation.client(EDGE_SECRET) as edge:
        refused = await reader.post("/v1/events", json={"type": "login", "ip": fresh_ip()})
        assert refused.status_code == 403 and body_of(refused)["code"] == "insufficient_scope"
        assert "'login'" in body_of(refused)["message"]
        # A read-only key still reads: checks, the list and the feed.
        assert (await reader.get("/v1/bans/check", params={"ip": fresh_ip()})).status_code == 200
        assert (await reader.get("/v1/bans")).status_code == 200
        assert (await reader.get("/v1/bans/changes")).status_code == 200
        assert (await edge.post("/v1/events", json={"type": "login", "ip": fresh_ip()})).status_code == 200
        wrong_type = await edge.post("/v1/events", json={"type": "register", "ip": fresh_ip()})
        assert wrong_type.status_code == 403
        # Only report-user keys may score user: subjects.
        user_event = await edge.post(
            "/v1/events", json={"type": "message", "ip": fresh_ip(), "user_id": "u1"}
        )
        user_violation = await edge.post("/v1/violations", json={"type": "non_browser", "user_id": "u1"})
        for response in (user_event, user_violation):
            assert response.status_code == 403 and "report-user" in body_of(response)["message"]
        ip_violation = await edge.post("/v1/violations", json={"type": "non_browser", "ip": fresh_ip()})
        assert ip_violation.status_code == 200


# Limits, scores and bans over HTTP ------------------------------------------------------------------


async def test_login_flood_is_limited_then_banned(auth_client: httpx.AsyncClient) -> None:
    ip = fresh_ip()
    answers = [await event(auth_client, type="login", ip=ip) for _ in range(8)]
    assert [a["allowed"] for a in answers] == [True] * 3 + [False] * 5
    limited = answers[3]
    assert limited["retry_after"] >= 1 and limited["limit"] == 3 and limited["remaining"] == 0
    assert "ban" not in limited
    banned = answers[7]  # the fifth violation crosses BAN_INTERVAL=5 and already carries the ban
    assert banned["ban"]["subject"] == f"ip:{ip}"
    assert banned["ban"]["reason"].startswith("automatic")
    assert banned["ban"]["expires_at"].endswith("Z")
    assert 55 <= banned["ban"]["retry_after"] <= 60 and banned["retry_after"] == banned["ban"]["retry_after"]
    check = body_of(await auth_client.get("/v1/bans/check", params={"ip": ip}))
    assert (
        check["banned"]
        and check["subject"] == f"ip:{ip}"
        and check["expires_at"] == banned["ban"]["expires_at"]
    )


async def test_registration_flood_is_limited_and_scored(auth_client: httpx.AsyncClient) -> None:
    ip = fresh_ip()
    answers = [await event(auth_client, type="register", ip=ip) for _ in range(4)]
    assert [a["allowed"] for a in answers] == [True, True, False, False]
    assert [a["score"] for a in answers] == [0, 0, 1, 2]


async def test_non_browser_reports_cannot_ban_alone(auth_client: httpx.AsyncClient) -> None:
    ip, user = fresh_ip(), fresh_user()
    first = await event(auth_client, type="non_browser", ip=ip, user_id=user)
    assert not first["allowed"] and first["score"] == 2 and "ban" not in first
    violation = await auth_client.post("/v1/violations", json={"type": "non_browser", "ip": ip, "score": 99})
    assert body_of(violation) == {"score": 4}
    third = await event(auth_client, type="non_browser", ip=ip, user_id=user)
    assert third["ban"]["subject"] in (f"ip:{ip}", f"user:{user}")


async def test_two_hosts_in_one_ipv6_64_share_a_bucket(auth_client: httpx.AsyncClient) -> None:
    net = ipaddress.IPv6Network(f"{fresh_ipv6()}/64", strict=False)
    hosts = [str(net.network_address + n) for n in (10, 20, 30, 40)]
    answers = [await event(auth_client, type="login", ip=host) for host in hosts]
    assert [a["allowed"] for a in answers] == [True, True, True, False]


async def test_exempt_proxy_addresses_skip_limits_and_bans(
    auth_client: httpx.AsyncClient, admin_client: httpx.AsyncClient
) -> None:
    for ip in ("10.9.3.4", "198.51.100.20"):
        answers = [await event(auth_client, type="login", ip=ip) for _ in range(12)]
        assert all(a["allowed"] for a in answers)
        assert not body_of(await auth_client.get("/v1/bans/check", params={"ip": ip}))["banned"]
    response = await admin_client.post(
        "/v1/bans", json={"subject": "ip:10.9.3.4", "reason": "proxy", "duration_seconds": 60}
    )
    assert response.status_code == 409 and body_of(response)["code"] == "subject_exempt"


async def test_account_throttle_and_device_cookie(auth_client: httpx.AsyncClient) -> None:
    account = fresh_account()
    for _ in range(4):
        await event(auth_client, type="login_failed", ip=fresh_ip(), account=account)
    stranger = await event(auth_client, type="login", ip=fresh_ip(), account=account)
    assert not stranger["allowed"] and stranger["score"] == 0 and "ban" not in stranger
    owner = await event(auth_client, type="login", ip=fresh_ip(), account=account, device_trusted=True)
    assert owner["allowed"]


async def test_manual_ban_unban_feed_and_audit(
    auth_client: httpx.AsyncClient, admin_client: httpx.AsyncClient
) -> None:
    start = body_of(await auth_client.get("/v1/bans"))["feed_cursor"]
    user = fresh_user()
    created = await admin_client.post(
        "/v1/bans", json={"subject": f"user:{user}", "reason": "chargeback fraud", "duration_seconds": 3600}
    )
    assert created.status_code == 201, created.text
    ban = body_of(created)
    assert ban["by"] == "cli" and ban["reason"] == "chargeback fraud" and not ban["automatic"]
    assert ban["retry_after"] == 3600
    check = body_of(await auth_client.get("/v1/bans/check", params={"user_id": user, "ip": fresh_ip()}))
    assert check["banned"] and check["subject"] == f"user:{user}" and check["reason"] == "chargeback fraud"
    refused = await event(auth_client, type="refresh", ip=fresh_ip(), user_id=user)
    assert not refused["allowed"] and refused["ban"]["subject"] == f"user:{user}"

    feed = body_of(await auth_client.get("/v1/bans/changes", params={"since": start}))
    mine = [c for c in feed["changes"] if c["subject"] == f"user:{user}"]
    assert [c["action"] for c in mine] == ["ban"] and mine[0]["expires_at"] == ban["expires_at"]

    lifted = await admin_client.delete(f"/v1/bans/user:{user}", params={"reason": "appeal granted"})
    assert lifted.status_code == 200 and body_of(lifted)["unbanned"]
    assert not body_of(await auth_client.get("/v1/bans/check", params={"user_id": user}))["banned"]
    feed2 = body_of(await auth_client.get("/v1/bans/changes", params={"since": feed["cursor"]}))
    assert [(c["action"], c["subject"]) for c in feed2["changes"]] == [("unban", f"user:{user}")]
    assert (
        body_of(await auth_client.get("/v1/bans/changes", params={"since": feed2["cursor"]}))["changes"] == []
    )

    trail = body_of(await admin_client.get("/v1/audit", params={"subject": f"user:{user}"}))["records"]
    assert [(r["action"], r["by"], r["reason"]) for r in trail] == [
        ("ban", "cli", "chargeback fraud"),
        ("unban", "cli", "appeal granted"),
    ]
    future = body_of(
        await admin_client.get(
            "/v1/audit", params={"subject": f"user:{user}", "since": "2999-01-01T00:00:00Z"}
        )
    )
    assert future["records"] == []


async def test_net_subjects_with_a_slash_can_be_unbanned(admin_client: httpx.AsyncClient) -> None:
    net = ipaddress.IPv6Network(f"{fresh_ipv6()}/64", strict=False)
    subject = f"net:{net}"
    created = await admin_client.post(
        "/v1/bans", json={"subject": subject, "reason": "x", "duration_seconds": 60}
    )
    assert created.status_code == 201
    host = str(net.network_address + 7)
    assert body_of(await admin_client.get("/v1/bans/check", params={"ip": host}))["subject"] == subject
    assert (await admin_client.delete(f"/v1/bans/{subject}")).status_code == 200
    assert not body_of(await admin_client.get("/v1/bans/check", params={"ip": host}))["banned"]


async def test_ban_list_pages_and_feed_reset(
    auth_client: httpx.AsyncClient, admin_client: httpx.AsyncClient
) -> None:
    first = body_of(await auth_client.get("/v1/bans"))["feed_cursor"]
    users = [fresh_user() for _ in range(45)]  # more than MODERATION_AUDIT_MAX_LEN=40 changes
    for user in users:
        response = await admin_client.post(
            "/v1/bans", json={"subject": f"user:{user}", "reason": "page", "duration_seconds": 600}
        )
        assert response.status_code == 201
    stale = body_of(await auth_client.get("/v1/bans/changes", params={"since": first}))
    assert stale["reset"] and stale["changes"] == [] and stale["cursor"]
    seen: set[str] = set()
    cursor: str | None = None
    while True:
        params = {"limit": "7"} | ({"cursor": cursor} if cursor else {})
        page = body_of(await auth_client.get("/v1/bans", params=params))
        assert len(page["bans"]) <= 7
        seen.update(b["subject"] for b in page["bans"])
        cursor = page["next"]
        if cursor is None:
            break
    assert {f"user:{u}" for u in users} <= seen
    resumed = body_of(await auth_client.get("/v1/bans/changes", params={"since": stale["cursor"]}))
    assert not resumed["reset"]
    for since in ("abcdef.1-1", "abcdef.99999999999999999999-99999999999999999999"):
        unknown = await auth_client.get("/v1/bans/changes", params={"since": since})
        assert unknown.status_code == 200 and body_of(unknown)["reset"]
    ahead = stale["cursor"].split(".")[0] + ".99999999999999999999-0"
    assert body_of(await auth_client.get("/v1/bans/changes", params={"since": ahead}))["reset"]


async def test_short_ban_expires_by_itself(
    auth_client: httpx.AsyncClient, admin_client: httpx.AsyncClient
) -> None:
    ip = fresh_ip()
    response = await admin_client.post(
        "/v1/bans", json={"subject": f"ip:{ip}", "reason": "x", "duration_seconds": 1}
    )
    assert response.status_code == 201
    assert body_of(await auth_client.get("/v1/bans/check", params={"ip": ip}))["banned"] in (True, False)
    deadline = time.monotonic() + 15
    while body_of(await auth_client.get("/v1/bans/check", params={"ip": ip}))["banned"]:
        assert time.monotonic() < deadline, "a one-second ban never ended"
        await asyncio.sleep(0.2)
    assert (await event(auth_client, type="login", ip=ip))["allowed"]


async def test_200_concurrent_events_on_one_subject_count_exactly(
    auth_client: httpx.AsyncClient, admin_client: httpx.AsyncClient
) -> None:
    ip = fresh_ip()
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(
        base_url=str(auth_client.base_url), headers=auth_client.headers, limits=limits, timeout=30
    ) as client:
        answers = await asyncio.gather(*(event(client, type="login", ip=ip) for _ in range(200)))
    allowed = sum(a["allowed"] for a in answers)
    limited = sum(not a["allowed"] and "ban" not in a for a in answers)
    banned = sum("ban" in a for a in answers)
    assert (allowed, limited, banned) == (3, 4, 193)
    trail = body_of(await admin_client.get("/v1/audit", params={"subject": f"ip:{ip}"}))["records"]
    assert [r["action"] for r in trail] == ["ban"]


async def test_health_and_readiness(moderation: Moderation) -> None:
    async with moderation.client(None) as client:
        assert body_of(await client.get("/healthz")) == {"status": "ok"}
        ready = body_of(await client.get("/readyz"))
        assert ready == {"status": "ready", "store": moderation.kind}
        response = await client.get("/healthz")
        assert "server" not in response.headers and response.headers["x-request-id"]
