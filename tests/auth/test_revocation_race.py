"""Logins racing the CLI's all-sessions revocation, with real processes, many rounds."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from pymongo import AsyncMongoClient

from tests.auth.conftest import STRONG_PASSWORD, base_env
from tests.harness import VENV_BIN, Server, clean_env

ROUNDS = 6
LOGINS_PER_ROUND = 4


def cli(env: dict[str, str], workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [str(VENV_BIN / "authgate"), *args],
        env=clean_env(env),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.e2e
async def test_no_session_checked_before_a_revocation_outlives_it(
    mongo: Server, auth_service: Callable[..., Server], tmp_path: Path
) -> None:
    env = {**base_env(mongo.port), "VERIFY_MAX_STALENESS": "400"}
    server = auth_service(**env)
    address = "racer@example.com"
    database = AsyncMongoClient[dict[str, Any]](env["MONGO_URI"], tz_aware=True).get_default_database()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        body = {
            "name": "R",
            "email": address,
            "password": STRONG_PASSWORD,
            "confirm_password": STRONG_PASSWORD,
        }
        assert (await client.post("/api/auth/register", json=body)).status_code == 200
        user = await database.users.find_one({"email": address})
        assert user is not None
        user_id = str(user["_id"])

        async def login() -> httpx.Response:
            return await client.post(
                "/api/auth/login",
                json={"email": address, "password": STRONG_PASSWORD, "refresh_token_in_body": True},
            )

        stale_seen = 0
        for round_number in range(ROUNDS):
            logins = [asyncio.create_task(login()) for _ in range(LOGINS_PER_ROUND)]
            done = await asyncio.to_thread(cli, env, tmp_path / "cli", "revoke-sessions", address)
            assert done.returncode == 0, done.stderr
            answers = await asyncio.gather(*logins)
            state = await database.auth_user_state.find_one({"_id": user_id})
            current = int((state or {}).get("session_epoch", 0))
            assert current == round_number + 1
            await asyncio.sleep(1.0)  # past VERIFY_MAX_STALENESS: /verify has read the feed
            for answer in answers:
                if answer.status_code != 200:
                    assert answer.status_code == 401, answer.text
                    continue
                tokens = answer.json()
                epoch = jwt.decode(tokens["token"], options={"verify_signature": False})["ep"]
                refreshed = await client.post(
                    "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
                )
                verify = await client.get("/verify", headers={"Authorization": f"Bearer {tokens['token']}"})
                if epoch < current:  # credentials checked before this round's revocation
                    stale_seen += 1
                    assert refreshed.status_code == 401, refreshed.text
                    assert verify.status_code == 401
                else:
                    assert refreshed.status_code == 200, refreshed.text
                    assert verify.status_code == 200
        assert stale_seen > 0  # the race was really run: some logins were checked before a revocation
    await database.client.close()
