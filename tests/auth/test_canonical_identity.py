"""One mailbox, one account: look-alike emails and usernames map to one canonical form everywhere.

Registration, login, the CLI and `/verify`'s identity headers all use the canonical form;
`authgate doctor` reports look-alike accounts already in a database (never merges them).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from harness import Server, run_authgate
from services.auth.accounts import canonical_username, normalize_email
from tests.auth.conftest import STRONG_PASSWORD, AuthApp, base_env

FULLWIDTH_DOMAIN = "root@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com"  # root@ + fullwidth "example"
FULLWIDTH_LOCAL = "\uff52\uff4f\uff4f\uff54@example.com"  # fullwidth "root" + @example.com


async def count_users(auth: AuthApp) -> int:
    return int(await auth.collection("users").count_documents({}))


def test_look_alikes_share_the_canonical_form() -> None:
    assert normalize_email(FULLWIDTH_DOMAIN) == "root@example.com"
    assert normalize_email(FULLWIDTH_LOCAL) == "root@example.com"
    assert normalize_email(" ROOT@Example.COM ") == "root@example.com"
    assert canonical_username("ROOT") == canonical_username("\uff32\uff2f\uff2f\uff34") == "root"


@pytest.mark.parametrize("look_alike", [FULLWIDTH_DOMAIN, FULLWIDTH_LOCAL, "ROOT@EXAMPLE.COM"])
async def test_look_alike_email_registers_no_second_account_and_logs_in(
    auth: AuthApp, look_alike: str
) -> None:
    first = await auth.register("root@example.com")
    assert first.status_code == 200, first.text
    again = await auth.register(look_alike)
    assert again.status_code == 200 and again.json() == first.json()
    assert await count_users(auth) == 1
    login = await auth.login(look_alike)
    assert login.status_code == 200, login.text
    assert login.json()["user"]["email"] == "root@example.com"


async def test_look_alike_registered_first_is_stored_canonical(auth: AuthApp) -> None:
    response = await auth.register(FULLWIDTH_DOMAIN)
    assert response.status_code == 200, response.text
    assert await auth.find_user("root@example.com") is not None
    assert (await auth.login("root@example.com")).status_code == 200


async def test_verify_headers_carry_the_canonical_identity(auth: AuthApp) -> None:
    response = await auth.register(FULLWIDTH_LOCAL, username="\uff32\uff4f\uff4f\uff54")
    assert response.status_code == 200, response.text
    token = (await auth.login_body(FULLWIDTH_DOMAIN))["token"]
    verified = await auth.get("/verify", token)
    assert verified.status_code == 200, verified.text
    prefix = auth.settings.verify_header_prefix
    assert verified.headers[f"{prefix}Email"] == "root@example.com"
    assert verified.headers[f"{prefix}Username"] == "root"


@pytest.mark.parametrize("taken", ["ROOT", "Root", "\uff52\uff4f\uff4f\uff54"])
async def test_usernames_are_unique_case_insensitively(auth: AuthApp, taken: str) -> None:
    assert (await auth.register("a@example.com", username="root")).status_code == 200
    response = await auth.register("b@example.com", username=taken)
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "username_taken"


async def test_usernames_are_stored_lower_cased(auth: AuthApp) -> None:
    assert (await auth.register("bob@example.com", username="Bob.Smith")).status_code == 200
    doc = await auth.find_user("bob@example.com")
    assert doc is not None and doc["username"] == "bob.smith"


async def test_legacy_mixed_case_username_still_blocks_its_look_alike(auth: AuthApp) -> None:
    now = dt.datetime.now(dt.UTC)
    await auth.collection("users").insert_one(
        {"email": "old@example.com", "username": "Carol", "provider": "local", "createdAt": now}
    )
    response = await auth.register("new@example.com", username="carol")
    assert response.status_code == 409, response.text


@pytest.mark.parametrize(
    "odd",
    [
        "",
        "@",
        "a@b@c",
        "x" * 5000,
        "\x00@example.com",
        "root@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com\u0301",
        "root@" + "\u3002" * 300,
        "root@xn--.com",
        "root@-.com",
        "\ufdfa" * 300 + "@example.com",
    ],
)
async def test_odd_login_input_is_refused_not_500(auth: AuthApp, odd: str) -> None:
    response = await auth.login(odd, "whatever password here")
    assert response.status_code in (401, 422), response.text
    assert response.json()["code"] in ("invalid_credentials", "invalid_input")


# The CLI --------------------------------------------------------------------------------


def authgate(env: dict[str, str], workdir: Path, *args: str, stdin: str | None = None) -> Any:
    return run_authgate(env, workdir, *args, stdin=stdin)


async def test_cli_finds_and_refuses_look_alikes(mongo: Server, tmp_path: Path) -> None:
    env = base_env(mongo.port)
    created = authgate(
        env, tmp_path, "create-user", "root@example.com", "--username", "Root", "--generate-password"
    )
    assert created.returncode == 0, created.stderr
    duplicate = authgate(env, tmp_path, "create-user", FULLWIDTH_DOMAIN, "--generate-password")
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    same_name = authgate(
        env, tmp_path, "create-user", "x@example.com", "--username", "ROOT", "--generate-password"
    )
    assert same_name.returncode == 1 and "taken" in same_name.stderr
    for args in (["set-role", FULLWIDTH_LOCAL, "ADMIN"], ["revoke-sessions", FULLWIDTH_DOMAIN]):
        result = authgate(env, tmp_path, *args)
        assert result.returncode == 0, result.stderr
    reset = authgate(
        env, tmp_path, "reset-password", FULLWIDTH_DOMAIN, "--password-stdin", stdin=STRONG_PASSWORD + "\n"
    )
    assert reset.returncode == 0, reset.stderr
    listed = authgate(env, tmp_path, "list-users")
    assert "root@example.com" in listed.stdout and "ADMIN" in listed.stdout and "1 user(s)" in listed.stdout


async def test_doctor_reports_look_alike_accounts_and_merges_nothing(mongo: Server, tmp_path: Path) -> None:
    env = base_env(mongo.port)
    now = dt.datetime.now(dt.UTC)
    docs = [
        {"email": "root@example.com", "username": "root", "role": "ADMIN"},
        {"email": FULLWIDTH_DOMAIN, "username": "other1"},
        {"email": "Root@Example.com", "username": "other2"},
        {"email": "bob@example.com", "username": "Bob"},
        {"email": "robert@example.com", "username": "bob"},
        {"email": "alone@example.com", "username": "alone"},
    ]
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(env["MONGO_URI"])
    try:
        users = client.get_default_database().get_collection("users")
        await users.insert_many([{**doc, "provider": "local", "createdAt": now} for doc in docs])
        result = authgate(env, tmp_path, "doctor")
        assert result.returncode == 1, result.stdout + result.stderr
        out = result.stdout
        assert "email root@example.com: 3 accounts share it" in out
        assert "username bob: 2 accounts share it" in out
        assert "alone" not in out
        assert await users.count_documents({}) == len(docs)
    finally:
        await client.close()


async def test_doctor_passes_on_a_clean_database(mongo: Server, tmp_path: Path) -> None:
    env = base_env(mongo.port)
    assert authgate(env, tmp_path, "create-user", "a@example.com", "--generate-password").returncode == 0
    result = authgate(env, tmp_path, "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no look-alike accounts" in result.stdout


async def test_unicode_domain_spelling_in_a_librechat_database_is_the_same_account(auth: AuthApp) -> None:
    now = dt.datetime.now(dt.UTC)
    hashed = await auth.ctx.accounts.hasher.hash(STRONG_PASSWORD)
    await auth.collection("users").insert_one(
        {"email": "u@bücher.de", "password": hashed, "provider": "local", "role": "USER", "createdAt": now}
    )
    assert (await auth.register("U@xn--bcher-kva.de")).status_code == 200
    assert await count_users(auth) == 1
    for spelling in ("u@bücher.de", "u@xn--bcher-kva.de", "U@BÜCHER.DE"):
        assert (await auth.login(spelling)).status_code == 200, spelling


async def test_verify_headers_are_canonical_for_a_legacy_mixed_case_account(auth: AuthApp) -> None:
    now = dt.datetime.now(dt.UTC)
    hashed = await auth.ctx.accounts.hasher.hash(STRONG_PASSWORD)
    await auth.collection("users").insert_one(
        {
            "email": "dave@xn--bcher-kva.de",
            "username": "Dave",
            "password": hashed,
            "provider": "local",
            "role": "USER",
            "createdAt": now,
        }
    )
    token = (await auth.login_body("dave@bücher.de"))["token"]
    verified = await auth.get("/verify", token)
    assert verified.status_code == 200, verified.text
    prefix = auth.settings.verify_header_prefix
    assert verified.headers[f"{prefix}Email"] == "dave@xn--bcher-kva.de"
    assert verified.headers[f"{prefix}Username"] == "dave"


async def test_cli_refuses_a_username_matching_a_legacy_mixed_case_one(mongo: Server, tmp_path: Path) -> None:
    env = base_env(mongo.port)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(env["MONGO_URI"])
    try:
        await (
            client.get_default_database()
            .get_collection("users")
            .insert_one({"email": "erin@example.com", "username": "Erin", "provider": "local"})
        )
        result = authgate(
            env, tmp_path, "create-user", "e2@example.com", "--username", "erin", "--generate-password"
        )
        assert result.returncode == 1 and "taken" in result.stderr, result.stdout + result.stderr
    finally:
        await client.close()
