"""§2 rows with no test elsewhere: with MongoDB unreachable from the start, the JWKS, OpenAPI,
configuration and health keep answering from memory, login answers 503 `store_unavailable`
without issuing anything, and /verify refuses even a well-signed token (503, never 2xx) because
the process never loaded its revocation state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness import free_port, mongo_uri


async def test_store_down_from_the_start(app_factory: Callable[..., Any]) -> None:
    nowhere = mongo_uri(free_port(), "never_there")  # nothing listens on that port
    async with app_factory(MONGO_URI=nowhere, MONGO_TIMEOUT="300") as auth:
        for path in ("/.well-known/jwks.json", "/openapi.json", "/api/config", "/healthz"):
            assert (await auth.client.get(path)).status_code == 200, path
        ready = await auth.client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["store"] == "unavailable"
        login = await auth.login("someone@example.com")
        assert login.status_code == 503
        assert login.json()["code"] == "store_unavailable"
        assert login.headers["retry-after"]
        assert "set-cookie" not in login.headers
        assert "token" not in login.json()
        issued = auth.ctx.tokens.issue(
            user_id="0" * 24,
            session_id="s",
            email="a@example.com",
            username="",
            role="ADMIN",
            provider="local",
        )
        verify = await auth.client.get("/verify", headers={"Authorization": f"Bearer {issued.token}"})
        assert verify.status_code == 503
        assert verify.json()["code"] == "revocation_state_stale"
        assert not any(name.lower().startswith("x-auth-") for name in verify.headers)
