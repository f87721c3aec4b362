"""`authgate mail-queue` as an operator runs it: list (never a body), retry a dead letter, drop;
and a half-configured mail setup stops the service at start-up with one line."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from harness import Server, run_authgate, run_to_exit
from services.auth.mail.outbox import Outbox, OutgoingMail
from services.auth.mail.sealing import BodySealer
from services.auth.mail.settings import MailSettings
from services.auth.store import Store
from tests.auth.conftest import base_env


async def queue_two(env: dict[str, str]) -> tuple[str, str]:
    """One pending and one dead mail, as the service's own outbox writes them."""
    store = Store(env["MONGO_URI"])
    settings = MailSettings(host="127.0.0.1", port=1, sender="noreply@example.com")
    outbox = Outbox(store.outbox, BodySealer(env["JWT_REFRESH_SECRET"]), settings)
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    try:
        pending = await outbox.enqueue(
            OutgoingMail("verify_email", "a@example.com", "Verify", "token SECRET-A", None, expires)
        )
        dead = await outbox.enqueue(
            OutgoingMail("password_reset", "b@example.com", "Reset", "token SECRET-B", None, expires)
        )
        await store.outbox.dead(dead, 8, "550 5.1.1 no such mailbox")
    finally:
        await store.close()
    return pending, dead


async def test_mail_queue_lists_retries_and_drops_without_showing_bodies(
    mongo: Server, tmp_path: Path
) -> None:
    env = base_env(mongo.port)
    pending, dead = await queue_two(env)
    listed = run_authgate(env, tmp_path, "mail-queue", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    entries: list[dict[str, Any]] = json.loads(listed.stdout)
    assert {entry["id"]: entry["state"] for entry in entries} == {pending: "pending", dead: "dead"}
    assert "SECRET" not in listed.stdout and "body" not in entries[0]
    table = run_authgate(env, tmp_path, "mail-queue", "list")
    assert "550 5.1.1" in table.stdout and "SECRET" not in table.stdout

    assert run_authgate(env, tmp_path, "mail-queue", "retry", dead).returncode == 0
    again = run_authgate(env, tmp_path, "mail-queue", "retry", pending)  # not a dead letter
    assert again.returncode == 1 and "no dead letter" in again.stderr
    assert run_authgate(env, tmp_path, "mail-queue", "drop", pending).returncode == 0
    gone = run_authgate(env, tmp_path, "mail-queue", "drop", pending)
    assert gone.returncode == 1 and "no mail" in gone.stderr

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(env["MONGO_URI"])
    try:
        states = {
            doc["_id"]: doc["state"] async for doc in client.get_default_database()["auth_outbox"].find({})
        }
    finally:
        await client.close()
    assert states == {dead: "pending"}


def test_half_configured_mail_stops_the_service_with_one_line(mongo: Server, tmp_path: Path) -> None:
    env = {**base_env(mongo.port), "EMAIL_HOST": "smtp.example.com", "EMAIL_USERNAME": "mailer"}
    done = run_to_exit("services.auth", env, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "EMAIL_PASSWORD" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
