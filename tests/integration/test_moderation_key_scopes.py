"""Auth's moderation key holds exactly the scopes auth uses, wherever the project hands one out.

The key `make run` generates is tried against a real moderation service: it may report
auth's own events, and cannot score users or report a chat service's events. The
shipped deploy files must list the same scopes.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from dotenv import dotenv_values

from harness import start_moderation
from shared.moderation.policy import AUTH_EVENT_TYPES, AUTH_KEY_SCOPES

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("deploy/k8s/README.md", "deploy/k8s/base/secret.example.yaml", ".env.example")


def load_devrun() -> ModuleType:
    spec = importlib.util.spec_from_file_location("devrun_under_test", ROOT / "scripts" / "devrun.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_make_run_key_reports_auth_events_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MODERATION_API_KEYS", "MODERATION_API_KEY", "MODERATION_ADMIN_KEY", "MODERATION_URL"):
        monkeypatch.delenv(name, raising=False)
    devrun = load_devrun()
    monkeypatch.setattr(devrun, "ROOT", tmp_path)
    devrun.ensure_secrets()
    generated = dotenv_values(tmp_path / "data" / "secrets.env")
    keys, auth_key = str(generated["MODERATION_API_KEYS"]), str(generated["MODERATION_API_KEY"])
    handle = start_moderation(tmp_path / "logs", {"MODERATION_API_KEYS": keys})
    try:
        headers = {"Authorization": f"Bearer {auth_key}"}
        async with httpx.AsyncClient(base_url=handle.server.url, headers=headers, timeout=10) as client:
            for kind in ("login", "register", "refresh", "logout"):
                allowed = await client.post("/v1/events", json={"type": kind, "ip": "198.51.100.7"})
                assert allowed.status_code == 200, (kind, allowed.text)
            refused = {
                "report-user": await client.post(
                    "/v1/violations", json={"type": "login", "user_id": "victim"}
                ),
                "message": await client.post("/v1/events", json={"type": "message", "ip": "198.51.100.7"}),
                "concurrent_message": await client.post(
                    "/v1/events", json={"type": "concurrent_message", "ip": "198.51.100.7", "user_id": "v"}
                ),
                "non_browser": await client.post(
                    "/v1/violations", json={"type": "non_browser", "ip": "198.51.100.7"}
                ),
                "illegal_model": await client.post(
                    "/v1/violations", json={"type": "illegal_model", "ip": "198.51.100.7"}
                ),
            }
            for what, response in refused.items():
                assert response.status_code == 403, (what, response.text)
                assert response.json()["code"] == "insufficient_scope"
    finally:
        handle.server.stop()


@pytest.mark.parametrize("path", SHIPPED)
def test_shipped_auth_key_entries_hold_auth_scopes_only(path: str) -> None:
    text = (ROOT / path).read_text()
    entries = re.findall(r"\bauth:([a-z_+-]+):", text)
    assert entries, f"{path} shows no auth key entry"
    for scopes in entries:
        assert scopes == AUTH_KEY_SCOPES, (path, scopes)
    assert set(AUTH_KEY_SCOPES.split("+")) == {"report", *AUTH_EVENT_TYPES}
