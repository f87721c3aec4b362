"""Metrics live on the management port only, count what operators alert on, and never carry identities."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx

from harness import Server, free_port, start_moderation, wait_port
from tests.auth.conftest import STRONG_PASSWORD


async def test_auth_metrics_on_management_port_only(auth_service: Callable[..., Server]) -> None:
    management = free_port()
    server = auth_service(AUTH_MANAGEMENT_PORT=str(management))
    wait_port(management, 30, server.proc)
    email = "metrics.user@example.com"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        body = {"name": "M", "email": email, "password": STRONG_PASSWORD, "confirm_password": STRONG_PASSWORD}
        assert (await client.post("/api/auth/register", json=body)).status_code == 200
        ok = await client.post("/api/auth/login", json={"email": email, "password": STRONG_PASSWORD})
        assert ok.status_code == 200
        bad = await client.post("/api/auth/login", json={"email": email, "password": "wrong " * 4})
        assert bad.status_code == 401
        token = ok.json()["token"]
        assert (await client.get("/verify", headers={"Authorization": f"Bearer {token}"})).status_code == 200
        assert (await client.get("/verify")).status_code == 401
        assert (await client.get("/metrics")).status_code == 404  # never on the public port
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{management}", timeout=30) as admin:
        text = (await admin.get("/metrics")).text
        assert (await admin.get("/healthz")).status_code == 200
        assert (await admin.get("/readyz")).status_code == 200
    assert 'authgate_logins_total{outcome="success"} 1.0' in text
    assert 'authgate_logins_total{outcome="failure"} 1.0' in text
    assert 'authgate_registrations_total{outcome="created"} 1.0' in text
    assert 'authgate_verify_total{outcome="allowed"} 1.0' in text
    assert 'authgate_verify_total{outcome="unauthorized"} 1.0' in text
    assert 'route="/api/auth/login"' in text
    assert "authgate_moderation_call_duration_seconds_bucket" in text
    assert 'authgate_moderation_circuit_state{state="closed"} 1.0' in text
    assert "authgate_revocation_staleness_seconds" in text
    # No identity ever becomes a label value.
    labels = " ".join(re.findall(r"\{[^}]*\}", text))
    assert "@" not in labels
    assert "127.0.0.1" not in labels
    assert ok.json()["user"]["id"] not in labels


async def test_moderation_metrics_on_management_port(tmp_path: Path) -> None:
    management = free_port()
    handle = start_moderation(tmp_path, {"MODERATION_MANAGEMENT_PORT": str(management)})
    try:
        wait_port(management, 30, handle.server.proc)
        headers = {"Authorization": f"Bearer {handle.report_key}"}
        async with httpx.AsyncClient(base_url=handle.server.url, timeout=30, headers=headers) as client:
            answer = await client.post("/v1/events", json={"type": "login", "ip": "198.51.100.20"})
            assert answer.status_code == 200
            assert (await client.get("/metrics")).status_code == 404
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{management}", timeout=30) as admin:
            text = (await admin.get("/metrics")).text
            assert (await admin.get("/readyz")).status_code == 200
        assert 'authgate_moderation_events_total{outcome="allowed",type="login"} 1.0' in text
        assert 'service="moderation"' in text
        assert "198.51.100.20" not in text
    finally:
        handle.server.stop()
