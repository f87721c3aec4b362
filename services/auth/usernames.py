"""Unique usernames without an index on `users`.

`users` carries exactly LibreChat's indexes, and LibreChat declares none on `username`. Names
are stored in their canonical (lower-cased) form and compared case-insensitively before a user
is created; this closes the race between two registrations of one name: each new user first
claims its name, and the store lets one claim win.

A claim whose user no longer holds the name (deleted, or its insert failed) is stale: once it
is older than `IN_FLIGHT` (no creation takes that long) another user may take it over, with a
compare-and-set so only one does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from services.auth.store import UsernameClaimRepository, UserRepository

IN_FLIGHT = dt.timedelta(seconds=60)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UsernameClaims:
    def __init__(
        self,
        claims: UsernameClaimRepository,
        users: UserRepository,
        canonical: Callable[[str], str],
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self._claims = claims
        self._users = users
        self._canonical = canonical
        self._clock = clock

    async def claim(self, name: str, user_key: object) -> bool:
        """Claim canonical `name` for the user about to be inserted as `user_key`; False if taken."""
        now = self._clock()
        if await self._claims.claim(name, user_key, now):
            return True
        held = await self._claims.holder(name)
        if held is None:
            return False  # released in between: refuse rather than loop; a retry succeeds
        owner = await self._users.find_by_id(str(held.get("user_id")))
        if owner is not None and self._canonical(str(owner.get("username") or "")) == name:
            return False
        at = held.get("at")
        if not isinstance(at, dt.datetime) or now - at < IN_FLIGHT:
            return False  # its user may be being inserted right now
        return await self._claims.take_over(name, held.get("user_id"), at, user_key, now)

    async def release(self, name: str, user_key: object) -> None:
        """Give back a claim whose user was not created."""
        await self._claims.release(name, user_key)
