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

from harness import Server, run_authgate
from tests.auth.conftest import STRONG_PASSWORD, base_env, registration
from tests.integration.support import REVOCATION_DEADLINE_S, run_cli

ROUNDS = 6
LOGINS_PER_ROUND = 4


def cli(env: dict[str, str], workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_authgate(env, workdir, *args)


@pytest.mark.e2e
async def test_no_session_checked_before_a_revocation_outlives_it(
    mongo: Server, auth_service: Callable[..., Server], tmp_path: Path
) -> None:
    env = {**base_env(mongo.port), "VERIFY_MAX_STALENESS": "400"}
    server = auth_service(**env)
    address = "racer@example.com"
    database = AsyncMongoClient[dict[str, Any]](env["MONGO_URI"], tz_aware=True).get_default_database()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        assert (await client.post("/api/auth/register", json=registration(address))).status_code == 200
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


RESET_ROUNDS = 6
RACERS = 3
PASSPHRASES = (STRONG_PASSWORD, "a second long passphrase for the racing logins")


async def login_until(
    client: httpx.AsyncClient,
    address: str,
    password: str,
    until: asyncio.Task[Any],
    answers: list[httpx.Response],
) -> None:
    """Log in again and again while `until` runs: some logins are always in flight when it revokes.

    A racer stops at its first refusal: the password is replaced by then, and further failures
    would only fill the account's failure window (a 429 on a slow machine, not the race).
    """
    while not until.done():
        answer = await client.post(
            "/api/auth/login",
            json={"email": address, "password": password, "refresh_token_in_body": True},
        )
        answers.append(answer)
        if answer.status_code != 200:
            return


@pytest.mark.e2e
async def test_no_login_with_the_replaced_password_outlives_a_reset(
    mongo: Server, auth_service: Callable[..., Server], tmp_path: Path
) -> None:
    """Logins with the current password keep arriving while `authgate reset-password` replaces it.

    Judged from outside, without the epoch claim: once the command has returned, every
    login that succeeded with the replaced password was checked before the reset, so
    none of them may refresh or pass /verify.
    """
    env = {**base_env(mongo.port), "VERIFY_MAX_STALENESS": "400"}
    server = auth_service(**env)
    address = "reset-racer@example.com"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        body = {"name": "R", "email": address, "password": PASSPHRASES[0], "confirm_password": PASSPHRASES[0]}
        assert (await client.post("/api/auth/register", json=body)).status_code == 200
        succeeded = 0
        for round_number in range(RESET_ROUNDS):
            old, new = PASSPHRASES[round_number % 2], PASSPHRASES[(round_number + 1) % 2]
            reset = asyncio.create_task(
                asyncio.to_thread(
                    run_cli,
                    env,
                    tmp_path / "cli",
                    "reset-password",
                    address,
                    "--password-stdin",
                    stdin=new + "\n",
                )
            )
            answers: list[httpx.Response] = []
            await asyncio.gather(*(login_until(client, address, old, reset, answers) for _ in range(RACERS)))
            await reset
            issued = [answer.json() for answer in answers if answer.status_code == 200]
            assert {answer.status_code for answer in answers} <= {200, 401}
            succeeded += len(issued)
            for tokens in issued:
                refreshed = await client.post(
                    "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
                )
                assert refreshed.status_code == 401, (
                    f"round {round_number}: a session checked before the reset still refreshes"
                )

            async def all_refused(issued: list[dict[str, Any]] = issued) -> bool:
                for tokens in issued:
                    headers = {"Authorization": f"Bearer {tokens['token']}"}
                    if (await client.get("/verify", headers=headers)).status_code != 401:
                        return False
                return True

            deadline = asyncio.get_running_loop().time() + REVOCATION_DEADLINE_S
            while not await all_refused():
                assert asyncio.get_running_loop().time() < deadline, (
                    f"round {round_number}: /verify still passes"
                )
                await asyncio.sleep(0.1)
        assert succeeded > 0  # logins with the old password did run during the resets
