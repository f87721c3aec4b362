"""`make run`'s launcher as a newcomer runs it: private data, no well-known store port, true URLs."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pymongo
import pytest
from pymongo.errors import OperationFailure

from harness import ROOT, clean_env, free_port


def _wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float = 120) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line.rstrip())
        if needle in line:
            return lines
    raise AssertionError("\n".join(lines))


def _close_output(proc: subprocess.Popen[str]) -> None:
    """The launcher's output pipe is ours to close once it has exited."""
    if proc.stdout is not None:
        proc.stdout.close()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_make_run_keeps_data_private_and_prints_the_real_urls(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    auth_port, moderation_port = free_port(), free_port()
    proc = _launch(root, auth_port, moderation_port)
    try:
        lines = _wait_for_line(proc, "auth API on")
        assert f"http://127.0.0.1:{auth_port}" in lines[-1]
        assert f"http://127.0.0.1:{moderation_port}" in lines[-1]

        store_port = int((root / "data" / "mongo.port").read_text())
        assert store_port != 27017
        assert _listening(store_port)

        data = root / "data"
        modes = {}
        for folder, dirs, files in os.walk(data):
            for name in [*dirs, *files]:
                path = Path(folder) / name
                modes[path] = stat.S_IMODE(path.lstat().st_mode)
        modes[data] = stat.S_IMODE(data.stat().st_mode)
        assert any(path.name == "secrets.env" for path in modes)
        assert any("mongo" in str(path.relative_to(data)) for path in modes)
        loose = {str(p): oct(m) for p, m in modes.items() if m & 0o077}
        assert loose == {}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        _close_output(proc)
    # Every child is gone when the launcher returns.
    assert not _listening(auth_port)
    assert not _listening(moderation_port)
    assert not _listening(store_port)


def _launch(
    root: Path, auth_port: int, moderation_port: int, *, new_group: bool = False, **extra: str
) -> subprocess.Popen[str]:
    env = clean_env(
        {
            "AUTHGATE_ROOT": str(root),
            "AUTH_PORT": str(auth_port),
            "MODERATION_PORT": str(moderation_port),
            "AUTH_MANAGEMENT_PORT": "0",
            "MODERATION_MANAGEMENT_PORT": "0",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    return subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "devrun.py")],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=new_group,
    )


def test_make_run_store_requires_its_generated_password(tmp_path: Path) -> None:
    """Another local user who finds the store's port reads nothing; the services log in with a password."""
    root = tmp_path / "root"
    root.mkdir()
    auth_port, moderation_port = free_port(), free_port()
    email, password = "newcomer@example.com", secrets.token_urlsafe(24)
    for run in ("first start", "restart"):  # the restart finds the store already provisioned
        proc = _launch(root, auth_port, moderation_port, ALLOW_REGISTRATION="true")
        try:
            _wait_for_line(proc, "auth API on")
            store_port = int((root / "data" / "mongo.port").read_text())
            anonymous: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
                f"mongodb://127.0.0.1:{store_port}/?retryWrites=false", serverSelectionTimeoutMS=10_000
            )
            with anonymous, pytest.raises(OperationFailure) as refused:
                anonymous["authgate"].list_collection_names()
            assert refused.value.code == 13, run  # Unauthorized
            with httpx.Client(base_url=f"http://127.0.0.1:{auth_port}", timeout=30) as http:
                if run == "first start":
                    body = {"name": "New", "email": email, "password": password, "confirm_password": password}
                    answer = http.post("/api/auth/register", json=body)
                    assert answer.status_code == 200, answer.text
                answer = http.post(
                    "/api/auth/login",
                    json={"email": email, "password": password, "refresh_token_in_body": True},
                )
                assert answer.status_code == 200, (run, answer.text)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            _close_output(proc)
        assert not _listening(store_port)


@pytest.mark.parametrize("interrupt_after", ["Ctrl-C stops everything", "starting the embedded MongoDB"])
def test_ctrl_c_then_an_immediate_restart(tmp_path: Path, interrupt_after: str) -> None:
    """Ctrl-C reaches the whole foreground group; the launcher returns only once every child is
    gone, so a second start at once finds the store's files free (also when interrupted mid-start)."""
    root = tmp_path / "root"
    root.mkdir()
    auth_port, moderation_port = free_port(), free_port()
    for _ in range(2):
        proc = _launch(root, auth_port, moderation_port, new_group=True)
        try:
            _wait_for_line(proc, interrupt_after)
        finally:
            os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
            proc.wait(timeout=60)
            _close_output(proc)
        leftovers = subprocess.run(
            ["pgrep", "-g", str(proc.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        assert leftovers == [], "children outlived the launcher"
    proc = _launch(root, auth_port, moderation_port)
    try:
        lines = _wait_for_line(proc, "auth API on")
        assert not any("Traceback" in line or "resource busy" in line for line in lines), lines
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        _close_output(proc)
