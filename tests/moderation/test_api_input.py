"""Bad input to the moderation API: a clear 4xx with a stable code, and nothing counted."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.moderation.conftest import (
    body_of,
    fresh_ip,
    fresh_user,
)
from tests.moderation.test_api import event

# Bad input -----------------------------------------------------------------------------------


BAD_EVENTS: list[tuple[Any, int, str]] = [
    ({"type": "teleport", "ip": "192.0.2.1"}, 422, "invalid_input"),
    ({"type": "login", "ip": "999.1.1.1"}, 422, "invalid_input"),
    ({"type": "login", "ip": "192.0.2.1:443"}, 422, "invalid_input"),
    ({"type": "login", "ip": "fe80::1%"}, 422, "invalid_input"),
    ({"type": "login", "ip": "192.0.2.1%eth0"}, 422, "invalid_input"),
    ({"type": "login", "ip": "Unknown"}, 422, "invalid_input"),
    ({"type": "login"}, 422, "invalid_input"),
    ({"type": "login", "ip": 3232235777}, 422, "invalid_input"),
    ({"type": "login", "ip": "192.0.2.1", "user_id": "u1"}, 422, "invalid_input"),
    ({"type": "login", "ip": "192.0.2.1", "account": "alice@example.com"}, 422, "invalid_input"),
    ({"type": "login_failed", "ip": "192.0.2.1"}, 422, "invalid_input"),
    ({"type": "message", "ip": "192.0.2.1", "account": "account:" + "a" * 64}, 422, "invalid_input"),
    ({"type": "login", "ip": "192.0.2.1", "device_trusted": True}, 422, "invalid_input"),
    ({"type": "login", "ip": "192.0.2.1", "device_trusted": "yes"}, 422, "invalid_input"),
    ({"type": "concurrent_message", "ip": "192.0.2.1"}, 422, "invalid_input"),
    ({"type": "register", "ip": "192.0.2.1", "release": True}, 422, "invalid_input"),
    ({"type": "login", "ip": "192.0.2.1", "submission": True}, 422, "invalid_input"),
    ({"type": "register", "ip": "192.0.2.1", "second_factor": True}, 422, "invalid_input"),
    ({"type": "two_factor_temp", "ip": "192.0.2.1"}, 422, "invalid_input"),
    ({"type": "message", "ip": "192.0.2.1", "user_id": "a b"}, 422, "invalid_input"),
    ({"type": "login", "ip": "192.0.2.1", "admin": True}, 422, "invalid_input"),
    (["login"], 422, "invalid_input"),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD_EVENTS)
async def test_bad_events_are_refused_clearly(
    auth_client: httpx.AsyncClient, body: Any, status: int, code: str
) -> None:
    response = await auth_client.post("/v1/events", json=body)
    assert response.status_code == status, response.text
    assert body_of(response)["code"] == code
    assert "Traceback" not in response.text


async def test_bad_bodies(auth_client: httpx.AsyncClient) -> None:
    cases = [
        (b"{not json", "application/json", 400, "invalid_json"),
        (b'{"type":"login","type":"register","ip":"192.0.2.1"}', "application/json", 400, "invalid_json"),
        (b"", "application/json", 400, "invalid_json"),
        (b"type=login", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b"[" * 5000, "application/json", 400, "invalid_json"),
    ]
    for raw, content_type, status, code in cases:
        response = await auth_client.post("/v1/events", content=raw, headers={"content-type": content_type})
        assert (response.status_code, body_of(response)["code"]) == (status, code), raw[:40]
    huge = b'{"type":"login","ip":"192.0.2.1","user_agent":"' + b"x" * 70_000 + b'"}'
    response = await auth_client.post(
        "/v1/events", content=huge, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and body_of(response)["code"] == "payload_too_large"


@pytest.mark.parametrize("content_type", [None, "text/plain"])
async def test_bodies_without_a_json_content_type_count_nothing(
    auth_client: httpx.AsyncClient, admin_client: httpx.AsyncClient, content_type: str | None
) -> None:
    """What a browser can post cross-site (no type, text/plain) is refused before it is counted."""
    ip = fresh_ip()
    posts = [
        (auth_client, "/v1/events", {"type": "login", "ip": ip}),
        (auth_client, "/v1/violations", {"type": "non_browser", "ip": ip}),
        (admin_client, "/v1/bans", {"subject": f"ip:{ip}", "reason": "x", "duration_seconds": 60}),
    ]
    for client, path, body in posts:
        request = client.build_request("POST", path, json=body)
        if content_type is None:
            del request.headers["Content-Type"]
        else:
            request.headers["Content-Type"] = content_type
        response = await client.send(request)
        assert response.status_code == 415, (path, response.text)
        assert body_of(response)["code"] == "unsupported_media_type"
    # Nothing was counted: the first real event and violation start from zero, and no ban exists.
    assert not body_of(await auth_client.get("/v1/bans/check", params={"ip": ip}))["banned"]
    first = await event(auth_client, type="login", ip=ip)
    assert first["remaining"] == first["limit"] - 1
    violation = await auth_client.post("/v1/violations", json={"type": "non_browser", "ip": ip})
    other = await auth_client.post("/v1/violations", json={"type": "non_browser", "ip": fresh_ip()})
    assert body_of(violation)["score"] == body_of(other)["score"]


@pytest.mark.parametrize(
    "body",
    [
        {"type": "login", "ip": "192.0.2.1", "score": -1},
        {"type": "login", "ip": "192.0.2.1", "score": 1.5},
        {"type": "login_failed", "ip": "192.0.2.1"},
        {"type": "nonsense", "ip": "192.0.2.1"},
        {"type": "login"},
        {"type": "login", "ip": "not-an-ip"},
    ],
)
async def test_bad_violations(auth_client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await auth_client.post("/v1/violations", json=body)
    assert response.status_code == 422 and body_of(response)["code"] == "invalid_input"


@pytest.mark.parametrize(
    "body",
    [
        {"subject": "ip:1.2.3", "reason": "x", "duration_seconds": 5},
        {"subject": "net:2001:db8::/48", "reason": "x", "duration_seconds": 5},
        {"subject": "net:10.0.0.0/24", "reason": "x", "duration_seconds": 5},
        {"subject": "host:example.com", "reason": "x", "duration_seconds": 5},
        {"subject": "user:", "reason": "x", "duration_seconds": 5},
        {"subject": "user:u1", "reason": "", "duration_seconds": 5},
        {"subject": "user:u1", "reason": "x", "duration_seconds": 0},
        {"subject": "user:u1", "reason": "x", "duration_seconds": -5},
        {"subject": "user:u1", "reason": "x", "duration_seconds": 10**12},
        {"subject": "user:u1", "reason": "x", "duration_seconds": "60"},
    ],
)
async def test_bad_bans(admin_client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await admin_client.post("/v1/bans", json=body)
    assert response.status_code == 422 and body_of(response)["code"] == "invalid_input", response.text


async def test_bad_queries_and_subjects(admin_client: httpx.AsyncClient) -> None:
    cases = [
        ("/v1/bans/check", {"ip": "nope"}),
        ("/v1/bans/check", {"user_id": "x" * 200}),
        ("/v1/bans", {"limit": "0"}),
        ("/v1/bans", {"limit": "many"}),
        ("/v1/bans/changes", {"since": "garbage"}),
        ("/v1/audit", {"since": "yesterday"}),
        ("/v1/audit", {"since": "2999-01-01"}),
        ("/v1/audit", {"since": "0.5"}),
        ("/v1/audit", {"subject": "ip:nope"}),
    ]
    for path, params in cases:
        response = await admin_client.get(path, params=params)
        assert response.status_code == 422 and body_of(response)["code"] == "invalid_input", (path, params)
    nothing = await admin_client.get("/v1/bans/check")
    assert body_of(nothing)["banned"] is False  # asking about nobody: nobody is banned
    response = await admin_client.delete("/v1/bans/" + quote("ip:300.1.1.1"))
    assert response.status_code == 422 and body_of(response)["code"] == "invalid_subject"
    response = await admin_client.delete(f"/v1/bans/user:{fresh_user()}")
    assert response.status_code == 404 and body_of(response)["code"] == "ban_not_found"
    response = await admin_client.get("/v1/nothing")
    assert response.status_code == 404 and body_of(response)["code"] == "not_found"
    response = await admin_client.put("/v1/events")
    assert response.status_code == 405 and body_of(response)["code"] == "method_not_allowed"
    for path in ("/v1/bans/check", "/v1/bans/changes"):  # GET-only siblings of DELETE /v1/bans/{subject}
        assert (await admin_client.delete(path)).status_code == 405
