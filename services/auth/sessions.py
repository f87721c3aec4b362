"""Sessions as refresh-token families: creation, atomic rotation, reuse detection, revocation.

Refresh tokens are 256-bit random values; only their SHA-256 hashes are stored.
A child token is derived from its parent with a keyed hash, so every concurrent
refresh of the same parent (parallel tabs) computes the same child inside the
grace period and the family stays one chain. Presenting an older token, or the
parent after the grace period, revokes the whole session.

Every revocation, whatever its cause, goes through `SessionService.revoke`,
which also records it in `auth_revocations` for the forward-auth cache.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace

from services.auth.audit import AuditTrail
from services.auth.counters import REFRESHES, REVOCATIONS
from services.auth.store import (
    Document,
    RevocationRepository,
    SessionRepository,
    UserState,
    UserStateRepository,
    text_value,
)
from shared.crypto import b64url_encode, derive_key

TOKEN_HISTORY = 64  # older tokens than this are simply unknown (401), not reuse
# How far auth's clock may run ahead of moderation's: a session opened up to this long after a
# ban's start (as moderation dates it) counts as opened before it, and the ban ends it.
BAN_CLOCK_TOLERANCE_MS = 500


class StaleCredentials(Exception):
    """An all-sessions revocation landed while these credentials were being checked."""


class InvalidRefreshToken(Exception):
    """Missing, unknown, expired, idle, revoked or replayed; callers answer 401 either way.

    `user_id` is set when the token belonged to a known session, so a banned user's
    refresh can be answered with the ban instead.
    """

    def __init__(self, reason: str, user_id: str | None = None) -> None:
        super().__init__(reason)
        self.user_id = user_id


def token_hash(token: str) -> str:
    return hashlib.sha256(text_value(token).encode()).hexdigest()


def session_id_of(token: str) -> str | None:
    """Refresh tokens are `<session id>.<256 random bits>`; the id finds the family for reuse checks."""
    session_id, dot, secret = token.partition(".")
    if not dot or not session_id or not secret or len(session_id) > 32:
        return None
    return session_id


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _opened_since(docs: list[Document], instant: dt.datetime) -> bool:
    """Whether a live session among these was opened at or after `instant`."""
    return any(doc.get("revoked_at") is None and doc["created_at"] >= instant for doc in docs)


@dataclass(frozen=True)
class Session:
    id: str
    user_id: str
    created_at: dt.datetime
    last_used_at: dt.datetime
    expires_at: dt.datetime
    ip: str | None
    user_agent: str | None
    revoked_at: dt.datetime | None
    epoch: int = 0
    amr: tuple[str, ...] = ("pwd",)  # how the user signed in: `pwd`, then `otp` after a second factor

    @classmethod
    def from_doc(cls, doc: Document) -> Session:
        return cls(
            id=doc["_id"],
            user_id=doc["user_id"],
            created_at=doc["created_at"],
            last_used_at=doc["last_used_at"],
            expires_at=doc["expires_at"],
            ip=doc.get("ip"),
            user_agent=doc.get("user_agent"),
            revoked_at=doc.get("revoked_at"),
            epoch=int(doc.get("epoch", 0)),
            amr=tuple(str(m) for m in doc.get("amr", ("pwd",))),
        )


@dataclass(frozen=True)
class RevokedByBan:
    """The ban behind a revocation: what /verify tells a client whose token it refuses."""

    reason: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class SessionPolicy:
    absolute_ms: int
    idle_ms: int
    grace_ms: int
    max_per_user: int
    access_lifetime_ms: int


class SessionService:
    def __init__(
        self,
        sessions: SessionRepository,
        user_state: UserStateRepository,
        revocations: RevocationRepository,
        audit: AuditTrail,
        refresh_secret: str,
        policy: SessionPolicy,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._clock = clock
        self._sessions = sessions
        self._user_state = user_state
        self._revocations = revocations
        self._audit = audit
        self._child_key = derive_key(refresh_secret, b"refresh-child")
        self.policy = policy
        self.revocation_listeners: list[Callable[[list[str], float], None]] = []
        self.epoch_listeners: list[Callable[[str, int, float], None]] = []

    # Tokens ---------------------------------------------------------------------

    def child_of(self, token: str) -> str:
        """The next token of the family: the session id, then HMAC(key, parent) (precision of issue 2)."""
        digest = hmac.new(self._child_key, token.encode(), hashlib.sha256).digest()
        return f"{session_id_of(token)}.{b64url_encode(digest)}"

    def is_live(self, doc: Document, now: dt.datetime | None = None) -> bool:
        now = now or self._clock()
        return (
            doc.get("revoked_at") is None
            and doc["expires_at"] > now
            and doc["last_used_at"] > now - dt.timedelta(milliseconds=self.policy.idle_ms)
        )

    # Lifecycle --------------------------------------------------------------------

    async def epoch(self, user_id: str) -> int:
        """The user's session epoch: every all-sessions revocation increments it."""
        return (await self._user_state.get(user_id)).session_epoch

    async def state(self, user_id: str) -> UserState:
        """Session and device epochs in one read (a login needs both)."""
        return await self._user_state.get(user_id)

    async def create(
        self,
        user_id: str,
        ip: str | None,
        user_agent: str | None,
        epoch: int = 0,
        amr: tuple[str, ...] = ("pwd",),
    ) -> tuple[Session, str]:
        """A fresh family for each login; client-supplied identifiers are never reused.

        `epoch` is the user's session epoch read before the credentials were checked. If an
        all-sessions revocation bumped it since, the new session is ended at once: the
        credentials were checked before that revocation and must not outlive it. (A bump
        after the re-read below finds this session in its sweep.) The re-read is the same
        atomic step that lists the session for the per-user limit: one round trip, not two.
        """
        session_id = secrets.token_urlsafe(16)
        token = f"{session_id}.{secrets.token_urlsafe(32)}"
        hashed = token_hash(token)
        now = self._clock()
        doc: Document = {
            "_id": session_id,
            "user_id": user_id,
            "current_hash": hashed,
            "parent_hash": None,
            "history": [hashed],
            "created_at": now,
            "last_used_at": now,
            "rotated_at": now,
            "expires_at": now + dt.timedelta(milliseconds=self.policy.absolute_ms),
            "revoked_at": None,
            "revoked_reason": None,
            "ip": ip,
            "user_agent": (user_agent or "")[:512] or None,
            "epoch": epoch,
            "amr": list(amr),
        }
        await self._sessions.insert(doc)
        added = await self._user_state.add_session(user_id, session_id, self.policy.max_per_user)
        if added.session_epoch > epoch:
            await self.revoke(
                user_id=user_id, session_ids=[session_id], reason="stale_credentials", actor="system"
            )
            raise StaleCredentials(user_id)
        await self._evict_beyond_limit(user_id, added.previous)
        return Session.from_doc(doc), token

    async def _evict_beyond_limit(self, user_id: str, previous: list[str]) -> None:
        """Keep the user's newest MAX_SESSIONS_PER_USER sessions; revoke what falls off the end.

        One bounded list per user (in the user state) replaces a scan of every session
        the user ever had: a session that falls off it is older than the newest N, so
        revoking it keeps at most N live (revoking one already ended changes nothing).
        """
        overflow = len(previous) + 1 - self.policy.max_per_user
        if overflow > 0:
            await self.revoke(
                user_id=user_id, session_ids=previous[:overflow], reason="max_sessions", actor="system"
            )

    async def rotate(self, token: str, ip: str | None, user_agent: str | None) -> tuple[Session, str]:
        """One atomic update keyed on the current token's hash rotates; racing presenters of the
        same parent get the same child within the grace period."""
        if not text_value(token) or len(token) > 128 or session_id_of(token) is None:
            raise InvalidRefreshToken("malformed")
        hashed = token_hash(token)
        child = self.child_of(token)
        child_hash = token_hash(child)
        now = self._clock()
        user_agent = (user_agent or "")[:512] or None
        changes = {"rotated_at": now, "last_used_at": now, "ip": ip, "user_agent": user_agent}
        before = await self._sessions.advance(hashed, child_hash, changes, TOKEN_HISTORY)
        if before is not None:
            if int(before.get("epoch", 0)) < await self.epoch(before["user_id"]):
                # Created from credentials checked before an all-sessions revocation.
                await self.revoke(
                    user_id=before["user_id"],
                    session_ids=[before["_id"]],
                    reason="stale_epoch",
                    actor="system",
                )
                raise InvalidRefreshToken("stale epoch", before["user_id"])
            if not self.is_live(before, now):
                # Liveness is judged on the document as it was; an ended session is closed for good.
                if before.get("revoked_at") is None:
                    await self.revoke(
                        user_id=before["user_id"], session_ids=[before["_id"]], reason="ended", actor="system"
                    )
                raise InvalidRefreshToken("ended", before["user_id"])
            session = replace(Session.from_doc(before), last_used_at=now, ip=ip, user_agent=user_agent)
            return session, child
        doc = await self._sessions.get(session_id_of(token) or "")
        if doc is None or hashed not in doc.get("history", ()):
            raise InvalidRefreshToken("unknown")
        if not self.is_live(doc, now):
            raise InvalidRefreshToken("ended", doc["user_id"])
        within_grace = now - doc["rotated_at"] <= dt.timedelta(milliseconds=self.policy.grace_ms)
        if doc.get("parent_hash") == hashed and doc.get("current_hash") == child_hash and within_grace:
            REFRESHES.labels("grace").inc()
            return Session.from_doc(doc), child
        REFRESHES.labels("reuse_detected").inc()
        await self.revoke(
            user_id=doc["user_id"], session_ids=[doc["_id"]], reason="refresh_token_reuse", actor="system"
        )
        await self._audit.record(
            "refresh_token_reuse", user_id=doc["user_id"], ip=ip, outcome="revoked", session_id=doc["_id"]
        )
        raise InvalidRefreshToken("reuse", doc["user_id"])

    async def find_live(self, session_id: str) -> Session | None:
        doc = await self._sessions.get(session_id)
        if doc is None or not self.is_live(doc):
            return None
        return Session.from_doc(doc)

    async def touch_live(self, session_id: str) -> Session | None:
        """The live session, its idle clock restarted (a session-cookie renewal); None if it ended."""
        doc = await self._sessions.get(session_id)
        now = self._clock()
        if doc is None or not self.is_live(doc, now):
            return None
        await self._sessions.touch(session_id, now)
        return replace(Session.from_doc(doc), last_used_at=now)

    async def step_up(self, session_id: str, method: str) -> Session | None:
        """The live session with one more sign-in method (a second factor proved later); None if it ended."""
        now = self._clock()
        doc = await self._sessions.get(session_id)
        if doc is None or not self.is_live(doc, now):
            return None
        await self._sessions.add_amr(session_id, method, now)
        found = await self._sessions.get(session_id)
        return Session.from_doc(found) if found is not None and self.is_live(found, now) else None

    async def find_by_token(self, token: str) -> Session | None:
        if not text_value(token) or len(token) > 128:
            return None
        doc = await self._sessions.find_current(token_hash(token))
        if doc is None or not self.is_live(doc):
            return None
        return Session.from_doc(doc)

    async def list_live(self, user_id: str) -> list[Session]:
        now = self._clock()
        live = [doc for doc in await self._sessions.of_user(user_id) if self.is_live(doc, now)]
        live.sort(key=lambda doc: doc["last_used_at"], reverse=True)
        return [Session.from_doc(doc) for doc in live]

    async def revoke_for_ban(
        self, user_id: str, ban: RevokedByBan, started_at: dt.datetime | None, in_force: bool = True
    ) -> int | None:
        """End the sessions a user ban found, once per ban; None when this ban was applied before.

        Every process learns every active ban when it starts or its ban feed resets; the first
        to apply it ends the sessions, the others write nothing (no epoch bump, no record).

        The revocation runs in the background and may run late: after the ban was lifted and the
        user signed in again. So it ends only the sessions opened before the ban began, as
        moderation dates it (`started_at`), plus BAN_CLOCK_TOLERANCE_MS for the skew between
        moderation's clock and auth's; without a start (an old moderation) it ends them all.
        The epoch is bumped (refusing every older token, including a session whose credentials
        were checked before the ban but which is not stored yet) only when no live session was
        opened after that instant: such a session means the user signed in after the ban began,
        which a known ban refuses, so the ban was lifted (or not yet known here) and a bump would
        end a sign-in the ban never covered. A ban no longer `in_force` when this runs still ends
        the sessions it found, but their records carry no ban: /verify answers 401, not `banned`.
        """
        if not await self._user_state.mark_ban_applied(user_id, int(ban.expires_at.timestamp() * 1000)):
            return None
        opened_before = (
            None if started_at is None else started_at + dt.timedelta(milliseconds=BAN_CLOCK_TOLERANCE_MS)
        )
        return await self.revoke(
            user_id=user_id,
            reason="user_banned",
            actor="moderation",
            ban=ban if in_force else None,
            opened_before=opened_before,
        )

    async def revoke(
        self,
        *,
        user_id: str,
        reason: str,
        actor: str,
        session_ids: list[str] | None = None,
        keep: str | None = None,
        ban: RevokedByBan | None = None,
        opened_before: dt.datetime | None = None,
    ) -> int:
        """The one revocation path: mark sessions revoked and record them for /verify.

        A revocation caused by a ban carries the ban, so a /verify that learns of the
        revocation before the ban itself still answers 403 `banned`, not 401.
        `opened_before` bounds an all-sessions revocation to the sessions opened before that
        instant, and bumps the epoch only if no live session was opened since (see
        `revoke_for_ban`).
        """
        now = self._clock()
        epoch: int | None = None
        if session_ids is not None:  # by id: a small indexed lookup, not every session of the user
            candidates = [
                doc for doc in await self._sessions.by_ids(session_ids) if doc.get("user_id") == user_id
            ]
        elif keep is not None:
            candidates = await self._sessions.of_user(user_id)
        else:
            # First the epoch, then the sweep: a login whose credentials were checked before this
            # point either sees the new epoch when it re-reads it, or is found by the sweep.
            if opened_before is None or not _opened_since(
                await self._sessions.of_user(user_id), opened_before
            ):
                epoch = await self._user_state.bump_session_epoch(user_id)
            candidates = await self._sessions.of_user(user_id)
        ids = [
            doc["_id"]
            for doc in candidates
            if doc.get("revoked_at") is None
            and doc["_id"] != keep
            and (opened_before is None or doc["created_at"] < opened_before)
        ]
        expires = now + dt.timedelta(milliseconds=self.policy.access_lifetime_ms + 120_000)
        extra: Document = {} if ban is None else {"ban_reason": ban.reason, "ban_expires_at": ban.expires_at}
        records: list[Document] = [
            {"sid": sid, "user_id": user_id, "reason": reason, "at": now, "expires_at": expires, **extra}
            for sid in ids
        ]
        if epoch is not None:  # /verify refuses this user's tokens from older epochs
            records.append(
                {"user_id": user_id, "epoch": epoch, "reason": reason, "at": now, "expires_at": expires}
            )
        await self._revocations.append(records)
        if ids:
            await self._sessions.mark_revoked(ids, now, reason)
        if ids:
            REVOCATIONS.labels(reason).inc(len(ids))
        for listener in self.revocation_listeners:
            listener(ids, expires.timestamp())
        if epoch is not None:
            for epoch_listener in self.epoch_listeners:
                epoch_listener(user_id, epoch, expires.timestamp())
        if ids:
            await self._audit.record(
                "session_revoked", user_id=user_id, actor=actor, reason=reason, sessions=len(ids)
            )
        return len(ids)
