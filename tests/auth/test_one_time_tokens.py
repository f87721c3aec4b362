"""Single-use tokens over the Mongo-wire server: hash only, once, expiry in code, newest wins."""

from __future__ import annotations

import datetime as dt

import pytest

from harness.clocks import ManualClock
from services.auth.one_time_tokens import PASSWORD_RESET, VERIFY_EMAIL, OneTimeTokens, token_hash
from services.auth.store import Store

HOUR = dt.timedelta(hours=1)


@pytest.fixture
def store(fresh_store: Store) -> Store:
    """Auth's repositories on a database of this test's own (tests/auth/conftest.py)."""
    return fresh_store


async def test_a_token_is_stored_as_a_hash_and_used_once(store: Store) -> None:
    tokens = OneTimeTokens(store.tokens)
    issued = await tokens.issue(VERIFY_EMAIL, "u1", HOUR)
    assert len(issued.token) >= 43  # 256 bits
    stored = [doc async for doc in store.db.get_collection("auth_tokens").find({})]
    assert [doc["_id"] for doc in stored] == [token_hash(issued.token)]
    assert issued.token not in str(stored)
    assert await tokens.use(VERIFY_EMAIL, issued.token) == "u1"
    assert await tokens.use(VERIFY_EMAIL, issued.token) is None


async def test_expiry_is_checked_in_code(store: Store) -> None:
    clock = ManualClock()
    tokens = OneTimeTokens(store.tokens, clock)
    issued = await tokens.issue(PASSWORD_RESET, "u1", HOUR)
    clock.now += HOUR + dt.timedelta(seconds=1)
    assert await tokens.use(PASSWORD_RESET, issued.token) is None


async def test_a_new_token_ends_the_older_ones_of_its_kind_only(store: Store) -> None:
    tokens = OneTimeTokens(store.tokens)
    old = await tokens.issue(PASSWORD_RESET, "u1", HOUR)
    other_kind = await tokens.issue(VERIFY_EMAIL, "u1", HOUR)
    new = await tokens.issue(PASSWORD_RESET, "u1", HOUR)
    assert await tokens.use(PASSWORD_RESET, old.token) is None
    assert await tokens.use(PASSWORD_RESET, new.token) == "u1"
    assert await tokens.use(VERIFY_EMAIL, other_kind.token) == "u1"


async def test_a_token_is_refused_for_another_kind_another_user_or_odd_input(store: Store) -> None:
    tokens = OneTimeTokens(store.tokens)
    issued = await tokens.issue(PASSWORD_RESET, "u1", HOUR)
    assert await tokens.use(VERIFY_EMAIL, issued.token) is None
    assert await tokens.use(PASSWORD_RESET, issued.token, user_id="u2") is None
    for odd in ("", "x" * 10_000):
        assert await tokens.use(PASSWORD_RESET, odd) is None
    assert await tokens.use(PASSWORD_RESET, issued.token, user_id="u1") == "u1"
