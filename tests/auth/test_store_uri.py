"""A malformed MONGO_URI stops the service with one line naming the variable, never a traceback,
and never with the password it contains."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from harness import run_to_exit
from services.auth.settings import load_settings
from shared.config import ConfigError, Env

BAD_URIS = (
    "redis://cache:6379",
    "notmongo://x",
    "mongodb://user:hunter2-secret@db:notaport/authgate",
    "mongodb://db:27017/authgate?unknownOption=&&",
)


def production(uri: str) -> dict[str, str]:
    return {
        "JWT_SECRET": secrets.token_hex(32),
        "JWT_REFRESH_SECRET": secrets.token_hex(32),
        "TOTP_ENCRYPTION_KEY": secrets.token_hex(32),
        "MONGO_URI": uri,
        "MODERATION_URL": "http://127.0.0.1:1",
        "MODERATION_API_KEY": secrets.token_urlsafe(32),
    }


@pytest.mark.parametrize("uri", BAD_URIS)
def test_settings_refuse_a_malformed_uri(tmp_path: Path, uri: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(Env([production(uri)]), root=tmp_path)
    assert info.value.name == "MONGO_URI"
    assert "hunter2-secret" not in str(info.value)


def test_seed_lists_and_srv_are_accepted(tmp_path: Path) -> None:
    for uri in ("mongodb://a:27017,b:27018/authgate?replicaSet=rs0", "mongodb+srv://cluster.example/db"):
        assert load_settings(Env([production(uri)]), root=tmp_path).mongo_uri == uri


def test_service_exits_with_one_line(tmp_path: Path) -> None:
    result = run_to_exit("services.auth", production(BAD_URIS[2]), cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "MONGO_URI" in lines[0], result.stderr
    assert "hunter2-secret" not in result.stderr + result.stdout
