"""SIGTERM drains in-flight requests: they all complete, new connections are refused, the process exits.

The in-flight logins are held at a known point: the moderation stand-in counts
their pre-checks and answers none until the test releases them, so the signal
provably arrives while every one of them is inside the service. uvicorn closes the
listener, waits for open connections (up to `timeout_graceful_shutdown`, 10 s), runs
the lifespan shutdown, then re-raises the captured SIGTERM: the exit status is
"terminated by SIGTERM" (-15), the conventional graceful exit under Kubernetes.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from harness import Server, eventually_sync
from tests.faults.support import FakeModeration, refuses_connections
from tests.integration.support import STRONG_PASSWORD, AuthClient, auth_env, start_auth

IN_FLIGHT = 8
EMAIL = "drain@example.com"


def test_sigterm_drains_in_flight_requests(
    mongo: Server, tmp_path: Path, fake_moderation: FakeModeration
) -> None:
    fake = fake_moderation
    env = auth_env(
        mongo.port,
        MODERATION_URL=fake.url,
        MODERATION_API_KEY="k" * 32,
        MODERATION_TIMEOUT="15000",  # longer than the hold: the pre-checks wait, they do not degrade
    )
    server = start_auth(env, tmp_path)
    try:
        api = AuthClient(server.url)
        api.register(EMAIL)
        api.close()

        fake.mode = "hold"
        fake.events = 0
        results: list[int | str] = []

        def login() -> None:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                try:
                    response = client.post(
                        "/api/auth/login", json={"email": EMAIL, "password": STRONG_PASSWORD}
                    )
                    results.append(response.status_code)
                except httpx.HTTPError as exc:
                    results.append(type(exc).__name__)

        threads = [threading.Thread(target=login, daemon=True) for _ in range(IN_FLIGHT)]
        for thread in threads:
            thread.start()
        eventually_sync(lambda: fake.events >= IN_FLIGHT, "every login inside the service", timeout=30)

        signalled = time.monotonic()
        os.kill(server.proc.pid, signal.SIGTERM)
        # The listener closes while the held requests are still in flight.
        eventually_sync(
            lambda: refuses_connections(server.port), "new connections refused after SIGTERM", timeout=10
        )
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/healthz", timeout=5)
        assert server.proc.poll() is None, "exited before draining"
        assert not results, results

        fake.release.set()  # moderation answers: the logins finish their work
        for thread in threads:
            thread.join(timeout=30)
        assert results == [200] * IN_FLIGHT, results

        returncode = server.proc.wait(timeout=30)
        assert time.monotonic() - signalled < 30
        assert returncode in (0, -signal.SIGTERM), returncode
    finally:
        server.stop()
    log = server.log()
    assert "Traceback" not in log, log[-3000:]
    assert "Cancel" not in log  # nothing was cut off by the graceful-shutdown timeout
