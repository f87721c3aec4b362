"""A bad REDIS_URI stops the real moderation process with one line naming the variable, never a traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness import run_to_exit


def start_refused(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    """`python -m services.moderation` in an empty folder (no .env), as an operator starts it."""
    env = {
        "AUTHGATE_ENV": "development",
        "MODERATION_PORT": "0",
        "MODERATION_MANAGEMENT_PORT": "0",
        **variables,
    }
    return run_to_exit("services.moderation", env, cwd=tmp_path, timeout=30)


def assert_one_line_naming_redis_uri(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "REDIS_URI" in lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "uri", ["redis://127.0.0.1:notaport", "redis://127.0.0.1:99999", "redis://[::1:6379"]
)
def test_malformed_redis_uri_is_one_line(tmp_path: Path, uri: str) -> None:
    line = assert_one_line_naming_redis_uri(start_refused(tmp_path, REDIS_URI=uri))
    assert uri not in line  # the URI may carry a password: never echoed


def test_a_cluster_seed_list_with_a_bad_entry_is_one_line(tmp_path: Path) -> None:
    done = start_refused(tmp_path, REDIS_URI="redis://127.0.0.1:6379,redis://127.0.0.1:notaport")
    assert "entry 2" in assert_one_line_naming_redis_uri(done)


def test_use_redis_cluster_without_seeds_is_one_line(tmp_path: Path) -> None:
    done = start_refused(tmp_path, USE_REDIS_CLUSTER="true")
    assert "USE_REDIS_CLUSTER" in assert_one_line_naming_redis_uri(done)
