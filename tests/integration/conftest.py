"""Integration fixtures: auth processes on the session store, and the app in-process for request shapes.

Subprocess fixtures stop everything they started, whatever the test's outcome.
The in-process app talks to the same real Mongo-wire server as the processes.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import Server
from harness.inprocess import InProcessApp
from tests.integration.proxy_shapes import shapes
from tests.integration.support import running_app, start_auth

__all__ = ["shapes"]  # module-scoped: built once per test module that uses it


@pytest.fixture
def auth_procs(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Server]]:
    """Start `python -m services.auth` processes with the given environment; all stopped afterwards."""
    started: list[Server] = []

    def start(env: dict[str, str]) -> Server:
        server = start_auth(env, tmp_path)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def inproc_factory(mongo: Server, tmp_path: Path) -> Callable[..., Any]:
    """`async with inproc_factory(VAR=value, ...) as app:` the app in-process on its own database."""

    def make(**overrides: str) -> contextlib.AbstractAsyncContextManager[InProcessApp]:
        return running_app(mongo.port, tmp_path / f"inproc-{secrets.token_hex(3)}", **overrides)

    return make
