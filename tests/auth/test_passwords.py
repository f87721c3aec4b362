"""Password storage: argon2id parameters, NFKC, LibreChat's bcrypt hashes, rehashing, registration races."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections import Counter
from collections.abc import Callable
from typing import Any

import bcrypt
from argon2 import PasswordHasher
from argon2.low_level import ARGON2_VERSION, Type, core, ffi, lib  # type: ignore[attr-defined]

from tests.auth.conftest import STRONG_PASSWORD, AuthApp

RFC9106_TAG = "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"
REFERENCE_PHC = "$argon2id$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$GpZ3sK/oH9p7VIiV56G/64Zo/8GaUw434IimaPqxwCo"


def email() -> str:
    return f"user-{secrets.token_hex(4)}@example.com"


def phc_parameters(stored: str) -> dict[str, str]:
    _, algorithm, version, params, salt, digest = stored.split("$")
    parsed = dict(item.split("=") for item in params.split(","))
    return {"algorithm": algorithm, "version": version, **parsed, "salt": salt, "hash": digest}


async def stored_hash(auth: AuthApp, address: str) -> str:
    doc = await auth.find_user(address)
    assert doc is not None
    value: str = doc["password"]
    return value


async def insert_legacy_user(auth: AuthApp, address: str, password_hash: str | None) -> None:
    """A user as LibreChat left it in `users` (its field names, its hash)."""
    now = dt.datetime.now(dt.UTC)
    await auth.collection("users").insert_one(
        {
            "name": "Legacy User",
            "username": f"legacy_{secrets.token_hex(3)}",
            "email": address,
            "emailVerified": True,
            "password": password_hash,
            "avatar": None,
            "provider": "local",
            "role": "USER",
            "createdAt": now,
            "updatedAt": now,
        }
    )


def bcrypt_hash(password: str, prefix: str = "$2b$") -> str:
    """What bcryptjs stored: the first 72 bytes of the raw password (bcrypt 5 refuses more)."""
    hashed = bcrypt.hashpw(password.encode()[:72], bcrypt.gensalt(rounds=4)).decode()
    return prefix + hashed[4:]


# argon2id ------------------------------------------------------------------------------


async def test_argon2id_parameters_and_distinct_salts(auth: AuthApp) -> None:
    first, second = email(), email()
    assert (await auth.register(first)).status_code == 200
    assert (await auth.register(second)).status_code == 200
    hashes = [await stored_hash(auth, first), await stored_hash(auth, second)]
    parsed = [phc_parameters(h) for h in hashes]
    for params in parsed:
        assert params["algorithm"] == "argon2id"
        assert params["version"] == "v=19"
        assert (params["m"], params["t"], params["p"]) == ("19456", "2", "1")
    assert parsed[0]["salt"] != parsed[1]["salt"]
    assert parsed[0]["hash"] != parsed[1]["hash"]
    assert STRONG_PASSWORD not in "".join(hashes)


async def test_argon2_parameters_follow_configuration(app_factory: Callable[..., Any]) -> None:
    async with app_factory(ARGON2_MEMORY_KIB="8192", ARGON2_TIME_COST="3", ARGON2_PARALLELISM="2") as auth:
        address = email()
        await auth.register(address)
        params = phc_parameters(await stored_hash(auth, address))
        assert (params["m"], params["t"], params["p"]) == ("8192", "3", "2")
        assert (await auth.login(address)).status_code == 200


def test_rfc9106_known_answer() -> None:
    """The argon2 binding computes the RFC 9106 §5.3 Argon2id test vector."""
    buffers = {
        "pwd": ffi.new("uint8_t[]", b"\x01" * 32),
        "salt": ffi.new("uint8_t[]", b"\x02" * 16),
        "secret": ffi.new("uint8_t[]", b"\x03" * 8),
        "ad": ffi.new("uint8_t[]", b"\x04" * 12),
    }
    out = ffi.new("uint8_t[]", 32)
    context = ffi.new(
        "argon2_context *",
        {
            "out": out,
            "outlen": 32,
            "pwd": buffers["pwd"],
            "pwdlen": 32,
            "salt": buffers["salt"],
            "saltlen": 16,
            "secret": buffers["secret"],
            "secretlen": 8,
            "ad": buffers["ad"],
            "adlen": 12,
            "t_cost": 3,
            "m_cost": 32,
            "lanes": 4,
            "threads": 4,
            "version": ARGON2_VERSION,
            "allocate_cbk": ffi.NULL,
            "free_cbk": ffi.NULL,
            "flags": lib.ARGON2_DEFAULT_FLAGS,
        },
    )
    assert core(context, Type.ID.value) == lib.ARGON2_OK
    assert bytes(ffi.buffer(out, 32)).hex() == RFC9106_TAG


async def test_reference_phc_string_verifies(auth: AuthApp) -> None:
    """The reference CLI's PHC string verifies through the service's own hasher."""
    assert PasswordHasher().verify(REFERENCE_PHC, "password")
    assert await auth.ctx.accounts.hasher.verify(REFERENCE_PHC, "password")
    assert not await auth.ctx.accounts.hasher.verify(REFERENCE_PHC, "Password")


# NFKC ------------------------------------------------------------------------------------

COMPOSED = "Åre ski lodge, third chairlift, 1978"
DECOMPOSED = "A\u030are ski lodge, third chairlift, 1978"


async def test_nfkc_composed_then_decomposed(auth: AuthApp) -> None:
    assert COMPOSED != DECOMPOSED
    address = email()
    assert (await auth.register(address, COMPOSED)).status_code == 200
    assert (await auth.login(address, DECOMPOSED)).status_code == 200
    assert (await auth.login(address, COMPOSED)).status_code == 200
    assert (await auth.login(address, COMPOSED.replace("Å", "A"))).status_code == 401


async def test_nfkc_decomposed_then_composed(auth: AuthApp) -> None:
    address = email()
    assert (await auth.register(address, DECOMPOSED)).status_code == 200
    assert (await auth.login(address, COMPOSED)).status_code == 200


async def test_nfkc_compatibility_forms(auth: AuthApp) -> None:
    """NFKC, not NFC: full-width letters and ligatures fold to their plain forms."""
    address = email()
    plain = "office hours finally moved 2031"
    # The ffi ligature, then full-width letters and digits.
    fancy = "o\ufb03ce hours \uff46\uff49\uff4e\uff41\uff4c\uff4c\uff59 moved \uff12\uff10\uff13\uff11"
    assert (await auth.register(address, plain)).status_code == 200
    assert (await auth.login(address, fancy)).status_code == 200


# LibreChat's bcrypt ------------------------------------------------------------------------


async def test_bcrypt_users_log_in_and_are_upgraded(auth: AuthApp) -> None:
    for prefix in ("$2b$", "$2a$", "$2y$"):
        address = email()
        legacy = bcrypt_hash("librechat-era password", prefix)
        assert legacy.startswith(prefix)
        await insert_legacy_user(auth, address, legacy)
        # A wrong password leaves the legacy hash alone.
        assert (await auth.login(address, "librechat-era passwort")).status_code == 401
        assert await stored_hash(auth, address) == legacy
        response = await auth.login(address, "librechat-era password")
        assert response.status_code == 200, response.text
        upgraded = await stored_hash(auth, address)
        params = phc_parameters(upgraded)
        assert (params["algorithm"], params["m"], params["t"], params["p"]) == ("argon2id", "19456", "2", "1")
        assert (await auth.login(address, "librechat-era password")).status_code == 200
        assert await stored_hash(auth, address) == upgraded  # not rehashed again
        doc = await auth.find_user(address)
        assert doc is not None
        assert doc["emailVerified"] is True  # the rest of LibreChat's document is untouched
        assert doc["name"] == "Legacy User"
    events = await auth.collection("auth_audit").count_documents(
        {"event": "password_rehashed", "legacy": "bcrypt"}
    )
    assert events == 3


async def test_bcrypt_long_password_uses_first_72_bytes_then_full_password(auth: AuthApp) -> None:
    """bcryptjs ignored everything after byte 72; the upgrade stores argon2id of the whole password.

    Before the upgrade any password sharing the first 72 bytes logs in (as it did in
    LibreChat); after it, only the full password does.
    """
    password = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(100))
    assert len(password) == 100
    same_prefix = password[:72] + "Z" * 28
    # Before the upgrade: the first 72 bytes decide (bcryptjs semantics).
    compat = email()
    await insert_legacy_user(auth, compat, bcrypt_hash(password))
    assert (await auth.login(compat, password[:71])).status_code == 401
    assert (await auth.login(compat, password[:72])).status_code == 200
    # Upgrade with the full password; afterwards only the full password works.
    address = email()
    await insert_legacy_user(auth, address, bcrypt_hash(password))
    assert (await auth.login(address, password)).status_code == 200
    upgraded = await stored_hash(auth, address)
    assert upgraded.startswith("$argon2id$")
    assert PasswordHasher().verify(upgraded, password)
    assert (await auth.login(address, password)).status_code == 200
    assert (await auth.login(address, same_prefix)).status_code == 401
    assert (await auth.login(address, password[:72])).status_code == 401


async def test_bcrypt_verifies_raw_bytes_and_upgrade_normalizes(auth: AuthApp) -> None:
    """LibreChat never normalized: the bcrypt check uses the raw bytes; the new argon2id hash is NFKC."""
    address = email()
    await insert_legacy_user(auth, address, bcrypt_hash(DECOMPOSED))
    assert (await auth.login(address, COMPOSED)).status_code == 401  # different raw bytes
    assert (await stored_hash(auth, address)).startswith("$2b$")
    assert (await auth.login(address, DECOMPOSED)).status_code == 200
    upgraded = await stored_hash(auth, address)
    assert upgraded.startswith("$argon2id$")
    assert PasswordHasher().verify(upgraded, COMPOSED)  # NFKC of the decomposed form
    assert (await auth.login(address, COMPOSED)).status_code == 200
    assert (await auth.login(address, DECOMPOSED)).status_code == 200


async def test_password_over_the_cap_never_reaches_bcrypt(auth: AuthApp) -> None:
    address = email()
    password = "q" * 100
    await insert_legacy_user(auth, address, bcrypt_hash(password))
    response = await auth.login(address, password[:72] + "z" * 57)  # 129 characters, same 72-byte prefix
    assert response.status_code == 422, response.text  # the size cap answers before any hash
    assert response.json()["code"] == "invalid_input"
    assert (await stored_hash(auth, address)).startswith("$2b$")


async def test_outdated_argon2_is_rehashed_on_success_only(auth: AuthApp) -> None:
    address = email()
    old = PasswordHasher(memory_cost=4096, time_cost=1, parallelism=1).hash(STRONG_PASSWORD)
    assert phc_parameters(old)["m"] == "4096"
    await insert_legacy_user(auth, address, old)
    assert (await auth.login(address, STRONG_PASSWORD + "x")).status_code == 401
    assert await stored_hash(auth, address) == old
    assert (await auth.login(address)).status_code == 200
    new = await stored_hash(auth, address)
    assert new != old
    params = phc_parameters(new)
    assert (params["algorithm"], params["m"], params["t"], params["p"]) == ("argon2id", "19456", "2", "1")
    assert (await auth.login(address)).status_code == 200
    assert await stored_hash(auth, address) == new


async def test_argon2i_hash_is_upgraded_to_argon2id(auth: AuthApp) -> None:
    from argon2 import Type as HashType

    address = email()
    old = PasswordHasher(type=HashType.I).hash(STRONG_PASSWORD)
    await insert_legacy_user(auth, address, old)
    assert (await auth.login(address)).status_code == 200
    assert (await stored_hash(auth, address)).startswith("$argon2id$")


async def test_garbage_hash_is_a_plain_failure(auth: AuthApp) -> None:
    for stored in ("", "plaintext-password", "$2b$04$short", "$argon2id$v=19$m=1,t=1,p=1$x$y", None):
        address = email()
        await insert_legacy_user(auth, address, stored)
        response = await auth.login(address, "plaintext-password")
        assert response.status_code == 401, (stored, response.text)
        assert response.json()["code"] == "invalid_credentials"


async def test_non_local_provider_cannot_use_a_password(auth: AuthApp) -> None:
    address = email()
    await insert_legacy_user(auth, address, await auth.ctx.accounts.hasher.hash(STRONG_PASSWORD))
    await auth.collection("users").update_one({"email": address}, {"$set": {"provider": "google"}})
    assert (await auth.login(address)).status_code == 401


# Registration races and enumeration ---------------------------------------------------------


async def test_fifty_concurrent_registrations_of_one_email(auth: AuthApp) -> None:
    address = email()
    passwords = [f"{STRONG_PASSWORD} {i} quokka" for i in range(50)]
    responses = await asyncio.gather(*(auth.register(address, p) for p in passwords))
    statuses = [r.status_code for r in responses]
    assert statuses == [200] * 50, [r.text for r in responses if r.status_code != 200]
    assert len({r.content for r in responses}) == 1
    assert await auth.collection("users").count_documents({"email": address}) == 1
    # Exactly one of the passwords owns the account.
    winners = [p for p in passwords if (await auth.login(address, p)).status_code == 200]
    assert len(winners) == 1
    assert await auth.collection("auth_audit").count_documents({"event": "register"}) == 1


async def test_concurrent_registrations_of_one_username(auth: AuthApp) -> None:
    responses = await asyncio.gather(*(auth.register(email(), username="morpheus") for _ in range(10)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * 9
    assert await auth.collection("users").count_documents({"username": "morpheus"}) == 1


async def test_registration_does_not_reveal_existing_emails(auth: AuthApp) -> None:
    existing = email()
    assert (await auth.register(existing)).status_code == 200
    new = await auth.register(email())
    again = await auth.register(existing)
    assert new.status_code == again.status_code == 200
    assert new.content == again.content
    assert set(new.headers) == set(again.headers)
    # Both paths hashed a password (the existing-email path must not be a shortcut):
    # the audit trail shows both were processed, and no second document appeared.
    assert await auth.collection("users").count_documents({"email": existing}) == 1
    events = [d["event"] async for d in auth.collection("auth_audit").find({}).sort("at", 1)]
    assert events == ["register", "register", "register_existing_email"]


class CountingHasher:
    """A spy around argon2-cffi's PasswordHasher: counts the expensive calls, changes nothing."""

    def __init__(self, inner: PasswordHasher) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if name not in ("hash", "verify"):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attribute(*args, **kwargs)

        return counted


async def test_every_path_runs_exactly_one_argon2_operation(auth: AuthApp) -> None:
    """Equal work whether or not the account exists (checklist items 14 and 15, deterministic form)."""
    hasher = auth.ctx.accounts.hasher
    spy = CountingHasher(hasher._argon2)
    hasher._argon2 = spy  # type: ignore[assignment]
    existing = email()

    async def calls(request: Any) -> dict[str, int]:
        spy.calls.clear()
        await request
        return dict(spy.calls)

    assert await calls(auth.register(existing)) == {"hash": 1}
    assert await calls(auth.register(existing)) == {"hash": 1}  # existing email: still one hash
    assert await calls(auth.login(existing)) == {"verify": 1}
    assert await calls(auth.login(existing, "wrong password entirely, sorry")) == {"verify": 1}
    assert await calls(auth.login(email())) == {"verify": 1}  # unknown email: the dummy hash
    assert await calls(auth.login(email(), "x")) == {"verify": 1}
