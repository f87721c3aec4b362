"""SMTP down while people register and reset: the HTTP answers do not change and the mails
arrive once it is back; a kill -9 of the auth service with mails in its outbox loses none."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from harness import Server, eventually, free_port, start_auth
from harness.smtp import MailSink, SmtpServer, start_smtp
from tests.auth.api_helpers import email
from tests.auth.conftest import STRONG_PASSWORD, registration
from tests.auth.test_password_reset import mail_env
from tests.integration.support import auth_env


def received(sink: MailSink, address: str, subject: str) -> int:
    return len(
        [m for m in sink.received if m.recipients == [address] and subject in str(m.message["Subject"])]
    )


async def test_smtp_down_changes_no_answer_and_the_mails_arrive_when_it_returns(
    app_factory: Callable[..., Any],
) -> None:
    sink = MailSink()
    smtp = start_smtp(sink=sink)
    env = mail_env(smtp)
    async with app_factory(**env) as auth:
        up_register = await auth.register(email())
        up_reset = await auth.client.post("/api/auth/requestPasswordReset", json={"email": email()})
        smtp.stop()  # down: connections are refused from here on
        newcomer, forgetful = email(), email()
        await auth.user(forgetful)  # its verification mail is queued while SMTP is down
        down_register = await auth.register(newcomer)
        down_reset = await auth.client.post("/api/auth/requestPasswordReset", json={"email": forgetful})
        assert (down_register.status_code, down_register.json()) == (
            up_register.status_code,
            up_register.json(),
        )
        assert (down_reset.status_code, down_reset.json()) == (up_reset.status_code, up_reset.json())

        async def failed_once() -> bool:
            doc = await auth.collection("auth_outbox").find_one({"to": forgetful, "kind": "password_reset"})
            return bool(doc and doc.get("attempts", 0) >= 1)

        await eventually(failed_once, "a delivery attempt failed against the stopped server")
        back = start_smtp(port=smtp.port, sink=sink)
        try:
            await eventually(
                lambda: received(sink, newcomer, "Verify") == 1 and received(sink, forgetful, "Reset") == 1,
                "the queued mails after SMTP came back",
                timeout=30,
            )
        finally:
            back.stop()


async def test_mails_queued_before_a_kill_9_are_sent_by_the_restarted_service(
    mongo: Server, tmp_path: Path
) -> None:
    sink = MailSink()
    smtp_port = free_port()  # nothing listens yet: the mail waits in the outbox
    env = auth_env(mongo.port, **mail_env(SmtpServer(None, sink, smtp_port)))  # type: ignore[arg-type]
    env["AUTH_PORT"] = str(free_port())
    auth = start_auth(env, tmp_path)
    address = email()
    try:
        with httpx.Client(base_url=auth.url, timeout=10) as client:
            answer = client.post("/api/auth/register", json=registration(address, STRONG_PASSWORD))
            assert answer.status_code == 200, answer.text
        # Killed once the mail waits for its next attempt. (One claimed at the very moment of the
        # kill waits out its lease first: tests/auth/test_mail_outbox.py covers that case.)
        await eventually(lambda: "mail_retry" in auth.log(), "a failed first attempt")
    finally:
        auth.stop(sig_kill=True)
    smtp = start_smtp(port=smtp_port, sink=sink)
    restarted = start_auth(env, tmp_path)
    try:
        await eventually(
            lambda: received(sink, address, "Verify") == 1, "the mail after the restart", timeout=30
        )
    finally:
        restarted.stop()
        smtp.stop()
