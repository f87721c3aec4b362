"""The outbox over the Mongo-wire server and a real SMTP server: sealed bodies, at-least-once
delivery with a stable Message-ID, backoff through an outage, dead letters, leases, expiry."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from typing import Any

import pytest

from harness import free_port
from harness.clocks import ManualClock
from harness.smtp import SmtpServer, start_smtp
from services.auth.mail.outbox import Outbox, OutgoingMail, RetryPolicy
from services.auth.mail.sealing import BodySealer
from services.auth.mail.settings import MailSettings
from services.auth.store import Store

SECRET = secrets.token_hex(32)


@pytest.fixture
def store(fresh_store: Store) -> Store:
    """Auth's repositories on a database of this test's own (tests/auth/conftest.py)."""
    return fresh_store


def settings_for(port: int) -> MailSettings:
    return MailSettings(host="127.0.0.1", port=port, sender="noreply@example.com", sender_name="Acme")


def outbox(store: Store, port: int, clock: ManualClock, secret: str = SECRET, attempts: int = 8) -> Outbox:
    policy = RetryPolicy(max_attempts=attempts, first_delay_s=5, max_delay_s=60, lease_s=60)
    return Outbox(store.outbox, BodySealer(secret), settings_for(port), policy=policy, clock=clock)


def mail(clock: ManualClock, text: str = "your link: https://x/verify?token=SECRET-TOKEN") -> OutgoingMail:
    return OutgoingMail(
        kind="verify_email",
        to="user@example.com",
        subject="Verify",
        text=text,
        html=None,
        expires_at=clock.now + dt.timedelta(hours=1),
    )


async def raw(store: Store, entry_id: str) -> dict[str, Any]:
    doc = await store.db.get_collection("auth_outbox").find_one({"_id": entry_id})
    assert doc is not None
    return doc


async def test_a_mail_is_stored_sealed_then_sent_once_with_its_entry_as_message_id(
    store: Store, smtp: SmtpServer
) -> None:
    clock = ManualClock()
    box = outbox(store, smtp.port, clock)
    entry_id = await box.enqueue(mail(clock))
    stored = await raw(store, entry_id)
    assert b"SECRET-TOKEN" not in bytes(stored["body"])
    assert await box.deliver_one()
    assert not await box.deliver_one()
    assert len(smtp.sink.received) == 1
    received = smtp.sink.received[0].message
    assert received["Message-ID"] == f"<{entry_id}@example.com>"
    assert "SECRET-TOKEN" in str(received.get_payload())
    sent = await raw(store, entry_id)
    assert sent["state"] == "sent" and "body" not in sent


async def test_an_smtp_outage_backs_off_and_the_mail_arrives_when_it_returns(store: Store) -> None:
    clock = ManualClock()
    port = free_port()
    box = outbox(store, port, clock)
    entry_id = await box.enqueue(mail(clock))
    assert await box.deliver_one()  # refused: nothing listens
    entry = await raw(store, entry_id)
    assert entry["state"] == "pending" and entry["attempts"] == 1
    assert not await box.deliver_one()  # not due before its backoff
    clock.advance(6)
    server = start_smtp("plain")
    try:
        box.settings = settings_for(server.port)
        assert await box.deliver_one()
        assert len(server.sink.received) == 1
    finally:
        server.stop()
    assert (await raw(store, entry_id))["state"] == "sent"


async def test_a_server_vanishing_mid_send_costs_a_retry_not_the_mail(store: Store, smtp: SmtpServer) -> None:
    clock = ManualClock()
    box = outbox(store, smtp.port, clock)
    entry_id = await box.enqueue(mail(clock))
    smtp.sink.vanish = True
    assert await box.deliver_one()  # the connection dropped after the data: not acknowledged
    assert (await raw(store, entry_id))["state"] == "pending" and not smtp.sink.received
    smtp.sink.vanish = False
    clock.advance(6)
    assert await box.deliver_one()
    assert len(smtp.sink.received) == 1 and (await raw(store, entry_id))["state"] == "sent"


async def test_a_permanent_refusal_is_a_dead_letter_that_can_be_retried(
    store: Store, smtp: SmtpServer
) -> None:
    clock = ManualClock()
    box = outbox(store, smtp.port, clock)
    entry_id = await box.enqueue(mail(clock))
    smtp.sink.refuse = "550 5.1.1 no such mailbox"
    assert await box.deliver_one()
    dead = await raw(store, entry_id)
    assert dead["state"] == "dead" and "550" in str(dead["last_error"]) and "body" in dead
    listed = await store.outbox.listing(10)
    assert [entry["_id"] for entry in listed] == [entry_id] and "body" not in listed[0]
    smtp.sink.refuse = None
    assert await store.outbox.requeue(entry_id, clock.now)
    assert await box.deliver_one()
    assert len(smtp.sink.received) == 1


async def test_too_many_temporary_failures_end_as_a_dead_letter(store: Store, smtp: SmtpServer) -> None:
    clock = ManualClock()
    box = outbox(store, smtp.port, clock, attempts=3)
    entry_id = await box.enqueue(mail(clock))
    smtp.sink.refuse = "451 4.3.0 try later"
    for _ in range(3):
        assert await box.deliver_one()
        clock.advance(120)
    entry = await raw(store, entry_id)
    assert entry["state"] == "dead" and entry["attempts"] == 3
    assert not await box.deliver_one()


async def test_an_entry_past_its_expiry_is_never_sent(store: Store, smtp: SmtpServer) -> None:
    clock = ManualClock()
    box = outbox(store, smtp.port, clock)
    entry_id = await box.enqueue(mail(clock))
    clock.advance(3601)
    assert await box.deliver_one()
    entry = await raw(store, entry_id)
    assert entry["state"] == "dead" and "body" not in entry
    assert smtp.sink.received == []


async def test_a_claimed_entry_is_leased_and_resumed_after_a_crash(store: Store, smtp: SmtpServer) -> None:
    """A process that claimed an entry and died: the lease runs out, another process sends it."""
    clock = ManualClock()
    first, second = outbox(store, smtp.port, clock), outbox(store, smtp.port, clock)
    entry_id = await first.enqueue(mail(clock))
    claimed = await store.outbox.claim_due(clock.now, clock.now + dt.timedelta(seconds=60))
    assert claimed is not None and claimed["_id"] == entry_id
    assert not await second.deliver_one()  # leased: never sent twice at once
    clock.advance(61)
    assert await second.deliver_one()
    assert len(smtp.sink.received) == 1


async def test_a_body_sealed_under_another_secret_is_never_sent(store: Store, smtp: SmtpServer) -> None:
    clock = ManualClock()
    entry_id = await outbox(store, smtp.port, clock, secret="other-" + SECRET).enqueue(mail(clock))
    assert await outbox(store, smtp.port, clock).deliver_one()
    entry = await raw(store, entry_id)
    assert entry["state"] == "dead" and "unreadable" in str(entry["last_error"]) and "body" not in entry
    assert smtp.sink.received == []


async def test_the_worker_ends_when_cancelled_as_a_mail_wakes_it(store: Store, smtp: SmtpServer) -> None:
    """A mail queued as the service shuts down must not swallow the worker's cancellation."""
    box = outbox(store, smtp.port, ManualClock())
    assert not await box.deliver_one()  # the connection is open: the worker idles at once
    box.start()
    await asyncio.sleep(0.5)  # the worker is idle, waiting to be woken
    worker = box._task
    assert worker is not None
    box._wake.set()
    worker.cancel()  # in the same step as the wake-up, as stop() does after an enqueue
    done, _ = await asyncio.wait({worker}, timeout=5)
    assert worker in done
    await box.stop()
