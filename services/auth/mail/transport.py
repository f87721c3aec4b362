"""SMTP delivery with aiosmtplib: implicit TLS, required STARTTLS, or opportunistic STARTTLS.

A failure is either temporary (the server is down, busy or answered 4xx: try again later) or
permanent (a 5xx answer: retrying the same mail cannot help). The outbox decides what to do.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

import aiosmtplib

from services.auth.mail.settings import MailSettings

TIMEOUT_S = 20.0


class DeliveryFailed(Exception):
    """The mail was not accepted; `permanent` when retrying the same mail cannot succeed."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.permanent = permanent


def build_message(
    settings: MailSettings, to: str, subject: str, text: str, html: str | None, message_id: str | None = None
) -> EmailMessage:
    """A text mail with an optional HTML alternative; the Message-ID is stable when given."""
    assert settings.sender is not None, "mail is not configured"
    message = EmailMessage()
    message["From"] = formataddr((settings.sender_name, settings.sender))
    message["To"] = to
    message["Subject"] = subject
    domain = settings.sender.rpartition("@")[2] or None
    message["Message-ID"] = message_id or make_msgid(domain=domain)
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


@functools.cache
def _tls_context(allow_self_signed: bool) -> ssl.SSLContext:
    """One context per process: loading the system's CA store costs ~20 ms of CPU per mail."""
    context = ssl.create_default_context()
    if allow_self_signed:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def send(settings: MailSettings, message: EmailMessage) -> None:
    """Hand one mail to the configured server; raises `DeliveryFailed`."""
    assert settings.host is not None, "mail is not configured"
    sock: socket.socket | None = None
    hostname = settings.host
    if settings.tls_hostname:
        # Connect to EMAIL_HOST but check its certificate against EMAIL_ENCRYPTION_HOSTNAME.
        sock = await asyncio.to_thread(socket.create_connection, (settings.host, settings.port), TIMEOUT_S)
        hostname = settings.tls_hostname
    client = aiosmtplib.SMTP(
        hostname=hostname,
        port=None if sock is not None else settings.port,
        sock=sock,
        use_tls=settings.encryption == "tls",
        start_tls={"starttls": True, "tls": False, "opportunistic": None}[settings.encryption],
        tls_context=_tls_context(settings.allow_self_signed),
        timeout=TIMEOUT_S,
    )
    try:
        async with client:
            if settings.username and settings.password:
                await client.login(settings.username, settings.password)
            await client.send_message(message)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        raise DeliveryFailed(f"recipient refused: {exc}", permanent=True) from None
    except aiosmtplib.SMTPResponseException as exc:
        raise DeliveryFailed(f"{exc.code} {exc.message}", permanent=exc.code >= 500) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}", permanent=False) from None
    finally:
        if sock is not None:
            sock.close()
