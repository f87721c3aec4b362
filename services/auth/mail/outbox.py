"""The outbox: a mail is stored first and sent by a background worker, so an SMTP outage loses
nothing, never slows an HTTP answer, and a restart resumes where the last process stopped.

Delivery is at least once: an entry is claimed with a lease, sent, then marked sent; a process
that dies between the two leaves the lease to run out and the entry is sent again, with the same
`Message-ID` (the entry's id), so mail systems can tell. Temporary failures back off
exponentially; a permanent one, too many attempts, or an entry past its token's expiry ends as
a dead letter (`authgate mail-queue`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage

import structlog

from services.auth.counters import MAILS
from services.auth.mail.sealing import BodySealer, Unreadable
from services.auth.mail.settings import MailSettings
from services.auth.mail.transport import DeliveryFailed, build_message, send
from services.auth.store import Document, OutboxRepository, StoreFailure
from shared.errors import StoreUnavailable

log = structlog.get_logger("authgate.mail")

Sender = Callable[[MailSettings, EmailMessage], Awaitable[None]]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class OutgoingMail:
    kind: str  # what it is for (verify_email, password_reset, ...): shown by mail-queue
    to: str
    subject: str
    text: str
    html: str | None
    expires_at: dt.datetime  # when its token (or its point) has passed: never sent after
    # Queued only so an unknown address costs the request the same work as a known one.
    suppress: bool = False


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    first_delay_s: float = 5.0
    max_delay_s: float = 3600.0
    lease_s: float = 60.0  # longer than any one delivery takes (the transport times out at 20 s)

    def delay_s(self, attempts: int) -> float:
        return float(min(self.max_delay_s, self.first_delay_s * 2 ** (attempts - 1)))


class Outbox:
    def __init__(
        self,
        entries: OutboxRepository,
        sealer: BodySealer,
        settings: MailSettings,
        *,
        sender: Sender = send,
        policy: RetryPolicy | None = None,
        clock: Callable[[], dt.datetime] = _utcnow,
        poll_interval_s: float = 1.0,
    ) -> None:
        self._entries = entries
        self._sealer = sealer
        self.settings = settings
        self._send = sender
        self.policy = policy or RetryPolicy()
        self._clock = clock
        self._poll_interval = poll_interval_s
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._wake = asyncio.Event()

    async def enqueue(self, mail: OutgoingMail) -> str:
        """Store the mail (body sealed) for the worker; the HTTP answer never waits for SMTP."""
        entry_id = secrets.token_urlsafe(16)
        now = self._clock()
        await self._entries.add(
            {
                "_id": entry_id,
                "kind": mail.kind,
                "to": mail.to,
                "subject": mail.subject,
                "body": self._sealer.seal(entry_id, mail.text, mail.html),
                "state": "pending",
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
                "lease_until": now,
                "expires_at": mail.expires_at,
                "suppress": mail.suppress,
            }
        )
        self._wake.set()
        return entry_id

    async def deliver_one(self) -> bool:
        """Send the next due entry; False when none is due."""
        now = self._clock()
        entry = await self._entries.claim_due(now, now + dt.timedelta(seconds=self.policy.lease_s))
        if entry is None:
            return False
        entry_id, attempts = str(entry["_id"]), int(entry.get("attempts", 0)) + 1
        if entry.get("suppress"):
            await self._entries.skipped(entry_id, now)
            MAILS.labels("suppressed").inc()
            return True
        expires = entry.get("expires_at")
        if isinstance(expires, dt.datetime) and expires <= now:
            await self._entries.dead(
                entry_id, attempts - 1, "expired before it could be sent", keep_body=False
            )
            MAILS.labels("expired").inc()
            return True
        try:
            text, html = self._sealer.open(entry_id, bytes(entry["body"]))
        except (Unreadable, KeyError, TypeError):
            await self._entries.dead(entry_id, attempts, "body unreadable (another secret?)", keep_body=False)
            MAILS.labels("unreadable").inc()
            return True
        message = build_message(
            self.settings, str(entry["to"]), str(entry["subject"]), text, html, self._message_id(entry_id)
        )
        try:
            await self._send(self.settings, message)
        except DeliveryFailed as exc:
            await self._failed(entry, attempts, exc)
            return True
        await self._entries.sent(entry_id, self._clock())
        MAILS.labels("sent").inc()
        log.info("mail_sent", entry=entry_id, kind=entry.get("kind"), attempts=attempts)
        return True

    async def _failed(self, entry: Document, attempts: int, exc: DeliveryFailed) -> None:
        entry_id = str(entry["_id"])
        if exc.permanent or attempts >= self.policy.max_attempts:
            await self._entries.dead(entry_id, attempts, str(exc))
            MAILS.labels("dead").inc()
            log.warning(
                "mail_dead_letter", entry=entry_id, kind=entry.get("kind"), attempts=attempts, error=str(exc)
            )
            return
        later = self._clock() + dt.timedelta(seconds=self.policy.delay_s(attempts))
        await self._entries.retry_later(entry_id, attempts, later, str(exc))
        MAILS.labels("retry").inc()
        log.info("mail_retry", entry=entry_id, kind=entry.get("kind"), attempts=attempts, error=str(exc))

    # The operator's view (`authgate mail-queue`): never a body -----------------------------------

    async def listing(self, limit: int = 200) -> list[Document]:
        return await self._entries.listing(limit)

    async def requeue(self, entry_id: str) -> bool:
        """A dead letter back to pending, attempts from zero; False when there is none to retry."""
        done = await self._entries.requeue(entry_id, self._clock())
        if done:
            self._wake.set()
        return done

    async def drop(self, entry_id: str) -> bool:
        return await self._entries.drop(entry_id)

    def _message_id(self, entry_id: str) -> str:
        domain = (self.settings.sender or "authgate").rpartition("@")[2] or "authgate"
        return f"<{entry_id}@{domain}>"

    # The worker -----------------------------------------------------------------------------------

    async def run(self) -> None:
        while not self._stopping:
            try:
                while not self._stopping and await self.deliver_one():
                    pass
            except (StoreUnavailable, StoreFailure) as exc:
                log.warning("mail_outbox_unavailable", error=type(exc).__name__)
            if self._stopping:
                # PyMongo can absorb a cancellation that lands mid-operation (as the revocation
                # cache found): the flag, not the cancel alone, ends the worker.
                return
            self._wake.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancellation that arrives as
            # the event is set.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval):
                    await self._wake.wait()

    def start(self) -> None:
        if self._task is None and self.settings.configured:
            self._stopping = False
            self._task = asyncio.create_task(self.run(), name="mail-outbox")

    async def stop(self) -> None:
        """Cancel the worker and wait for it; a cancellation of the caller still propagates."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            self._wake.set()
            task.cancel()
            await asyncio.wait({task})
