"""What the domain asks of the store, one protocol per collection.

Domain modules depend on these, never on the driver; `mongo_*` modules implement them
on MongoDB (and the Mongo-wire server the tests and `make run` use). Documents are plain
dicts with LibreChat's field names for `users` and authgate's own for the `auth_*` ones.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

Document = dict[str, Any]


@dataclass(frozen=True)
class UserState:
    """Per-user counters that outlive the user document (a deleted user's epochs never go back)."""

    session_epoch: int = 0
    device_epoch: int = 0


@dataclass(frozen=True)
class SessionAdded:
    """What registering a new session saw: the sessions listed before it, and the epoch then."""

    previous: list[str]
    session_epoch: int


class UserRepository(Protocol):
    def new_key(self) -> object:
        """A fresh `_id` in LibreChat's form, for a user about to be inserted."""
        ...

    async def find_by_emails(self, forms: list[str]) -> Document | None: ...
    async def find_by_id(self, user_id: str) -> Document | None: ...
    async def username_exists(self, canonical: str) -> bool:
        """Case-insensitive: a mixed-case name stored before names were lower-cased still counts."""
        ...

    async def insert(self, doc: Document) -> Document:
        """The document with its new `_id`; `DuplicateValue` on a unique index."""
        ...

    async def set_password(self, key: object, new_hash: str, *, expected: str | None = None) -> None:
        """Replace the hash (only if it still is `expected`, when given)."""
        ...

    async def set_role(self, key: object, role: str) -> Document | None: ...
    async def set_email_verified(self, key: object) -> None: ...
    async def set_two_factor(self, key: object, enabled: bool) -> None:
        """Set `twoFactorEnabled`; LibreChat's own TOTP fields go (authgate's state is elsewhere)."""
        ...

    async def delete(self, key: object) -> None: ...
    def identities(self) -> AsyncIterator[Document]:
        """Every user's `_id`, email, username, role and creation time."""
        ...

    async def list(self, limit: int) -> list[Document]:
        """Users without their hashes, oldest first."""
        ...


class UserStateRepository(Protocol):
    async def get(self, user_id: str) -> UserState: ...
    async def bump_session_epoch(self, user_id: str) -> int:
        """The new epoch, after an atomic increment."""
        ...

    async def add_session(self, user_id: str, session_id: str, keep: int) -> SessionAdded:
        """Append to the user's bounded session list (the newest `keep`) in one atomic step."""
        ...

    async def bump_device_epoch(self, user_id: str) -> None: ...
    async def mark_ban_applied(self, user_id: str, ban_key: int) -> bool:
        """Record that this ban ended the user's sessions; False when it already had."""
        ...

    async def forget_sessions(self, user_id: str) -> None:
        """Drop the session list; the epochs stay as a tombstone."""
        ...


class SessionRepository(Protocol):
    async def insert(self, doc: Document) -> None: ...
    async def get(self, session_id: str) -> Document | None: ...
    async def find_current(self, token_hash: str) -> Document | None: ...
    async def advance(
        self, current_hash: str, child_hash: str, changes: Document, history: int
    ) -> Document | None:
        """Rotate atomically from `current_hash` to `child_hash`; the document as it was, or None."""
        ...

    async def of_user(self, user_id: str) -> list[Document]: ...
    async def by_ids(self, session_ids: list[str]) -> list[Document]: ...
    async def mark_revoked(self, session_ids: list[str], at: dt.datetime, reason: str) -> None: ...
    async def touch(self, session_id: str, at: dt.datetime) -> None: ...
    async def add_amr(self, session_id: str, method: str, at: dt.datetime) -> None: ...


class RevocationRepository(Protocol):
    async def append(self, records: list[Document]) -> None:
        """Give each record the next feed position (one store-side counter) and store them."""
        ...

    async def allocate_positions(self, count: int) -> range:
        """`count` consecutive feed positions, for a writer that stores its records itself."""
        ...

    def live(self, now: dt.datetime) -> AsyncIterator[Document]:
        """Every record that has not expired: the first load."""
        ...

    def from_position(self, position: int) -> AsyncIterator[Document]:
        """Every record at `position` or later: the polls after the first load."""
        ...


class AuditRepository(Protocol):
    async def insert(self, record: Document) -> None: ...
    async def query(self, user_id: str | None, since: dt.datetime | None, limit: int) -> list[Document]: ...


class UsernameClaimRepository(Protocol):
    """One document per canonical username: the store lets one claim of a name win."""

    async def claim(self, name: str, user_key: object, at: dt.datetime) -> bool:
        """True when this call created the claim; False when the name is already claimed."""
        ...

    async def holder(self, name: str) -> Document | None: ...
    async def take_over(
        self, name: str, held_by: object, held_at: dt.datetime, user_key: object, at: dt.datetime
    ) -> bool:
        """Compare-and-set from the claim as read; True when this call took it."""
        ...

    async def release(self, name: str, user_key: object) -> None: ...


class OutboxRepository(Protocol):
    """Mails waiting to be sent; a claim is a lease, so two replicas never send the same entry."""

    async def add(self, entry: Document) -> None: ...
    async def claim_due(self, now: dt.datetime, lease_until: dt.datetime) -> Document | None:
        """One pending entry whose time has come and whose lease (if any) has run out."""
        ...

    async def sent(self, entry_id: str, at: dt.datetime) -> None:
        """Done: the sealed body is deleted at once."""
        ...

    async def skipped(self, entry_id: str, at: dt.datetime) -> None:
        """Never to be sent (queued only to make unknown addresses cost the same): body deleted."""
        ...

    async def retry_later(self, entry_id: str, attempts: int, at: dt.datetime, error: str) -> None: ...
    async def dead(self, entry_id: str, attempts: int, error: str, *, keep_body: bool = True) -> None:
        """Given up: kept for `mail-queue` (its body only while a retry could still help)."""
        ...

    async def listing(self, limit: int) -> list[Document]:
        """Entries without their bodies, oldest first."""
        ...

    async def requeue(self, entry_id: str, at: dt.datetime) -> bool: ...
    async def drop(self, entry_id: str) -> bool: ...
    async def count_for(self, to: str, kind: str, since: dt.datetime, *, mailed_only: bool) -> int:
        """Entries of `kind` to `to` queued at or after `since` (only those meant to be sent, or all)."""
        ...


class OneTimeTokenRepository(Protocol):
    """Hashes of single-use tokens (verification, reset): the raw token is never stored."""

    async def replace(
        self, kind: str, user_id: str, token_hash: str, expires_at: dt.datetime, created_at: dt.datetime
    ) -> None:
        """Store a new token, and drop every older one of this kind for this user."""
        ...

    async def issued_since(self, kind: str, user_id: str, since: dt.datetime) -> bool:
        """Whether this user's live token of this kind was issued at or after `since`."""
        ...

    async def consume(self, kind: str, token_hash: str, user_id: str | None) -> Document | None:
        """Remove and return the matching token in one atomic step (for `user_id` when given)."""
        ...


class TwoFactorRepository(Protocol):
    """`auth_two_factor`: one document per user with a second factor or a pending enrolment.

    Fields: `enabled`, `secret` (sealed), `salt`, `codes` ({hash: False, or the time it was
    used}), `legacy_codes` (LibreChat's unsalted hashes, same shape), `last_step`, `pending`
    ({id, secret, salt, codes}). Every state change is one conditional update.
    """

    async def get(self, user_id: str) -> Document | None: ...
    async def set_pending(self, user_id: str, pending: Document) -> None:
        """Store (replace) the pending enrolment; the active factor, if any, is untouched."""
        ...

    async def promote(self, user_id: str, pending_id: str, active: Document) -> bool:
        """Replace the active factor with `active` and drop the pending enrolment, only if it
        is still `pending_id`; False when another request changed it first."""
        ...

    async def import_active(self, user_id: str, active: Document) -> bool:
        """Make `active` the enabled factor unless one is enabled already (a LibreChat import)."""
        ...

    async def advance_step(self, user_id: str, step: int) -> bool:
        """Set `last_step` to `step` only if it is below it: a code's step is accepted once."""
        ...

    async def use_code(self, user_id: str, field: str, code_hash: str, at: dt.datetime) -> bool:
        """Mark one unused code of `field` (`codes` or `legacy_codes`) used, atomically."""
        ...

    async def replace_codes(self, user_id: str, salt: str, hashes: list[str]) -> bool:
        """New backup codes for an enabled factor; LibreChat's imported ones end."""
        ...

    async def reseal(self, user_id: str, field: str, old: str, new: str) -> bool:
        """Compare-and-set one sealed secret (`secret` or `pending.secret`)."""
        ...

    async def delete(self, user_id: str) -> bool: ...
    def sealed(self) -> AsyncIterator[Document]:
        """Every document's `_id`, `secret` and `pending.secret`."""
        ...


class TempTokenRepository(Protocol):
    """`auth_2fa_temp`: one record per issued temp token (its jti), deleted when used."""

    async def add(self, jti: str, user_id: str, expires_at: dt.datetime) -> None: ...
    async def attempt(self, jti: str, user_id: str, max_attempts: int) -> bool:
        """Count an attempt if the live record has fewer than `max_attempts`; False otherwise."""
        ...

    async def consume(self, jti: str, user_id: str) -> bool:
        """Delete the live record; True only for the call that deleted it."""
        ...


class PasskeyRepository(Protocol):
    """`auth_passkeys`: one document per WebAuthn credential, `credential_id` unique."""

    async def insert(self, doc: Document) -> None: ...
    async def by_credential_id(self, credential_id: str) -> Document | None: ...
    async def list_for(self, user_id: str) -> list[Document]: ...
    async def count_for(self, user_id: str) -> int: ...
    async def record_use(self, passkey_id: str, old_count: int, new_count: int, at: dt.datetime) -> bool:
        """Set the counter to `new_count` only if it is still `old_count`."""
        ...

    async def rename(self, user_id: str, passkey_id: str, name: str) -> bool: ...
    async def delete(self, user_id: str, passkey_id: str) -> Document | None: ...
    async def restore(self, doc: Document) -> None: ...
    async def delete_all(self, user_id: str) -> int: ...


class WebAuthnChallengeRepository(Protocol):
    """`auth_webauthn_challenges`: pending ceremonies, each taken (deleted) when answered."""

    async def insert(self, doc: Document) -> None: ...
    async def take(self, challenge_hash: str) -> Document | None: ...
