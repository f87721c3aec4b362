"""A real SMTP server (aiosmtpd) on a free port that keeps what it receives, for the mail tests.

Plain, STARTTLS or implicit TLS with a self-signed certificate made for the run, and optional
LOGIN/PLAIN authentication; `refuse` makes it answer every mail with a given SMTP code.
"""

from __future__ import annotations

import datetime as dt
import email
import ipaddress
import ssl
import tempfile
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harness.processes import free_port


def self_signed_context(hostname: str = "localhost") -> ssl.SSLContext:
    """A server TLS context with a throwaway certificate for `hostname` and 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder = Path(tempfile.mkdtemp(prefix="authgate-smtp-tls-"))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: Message


@dataclass
class MailSink:
    """What the server received, and how it should answer the next mails."""

    received: list[Received] = field(default_factory=list)
    refuse: str | None = None  # e.g. "451 4.3.0 try later" or "550 5.1.1 no such user"
    vanish: bool = False  # drop the connection once the mail's data has arrived, without an answer

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        if self.vanish:
            server.transport.abort()
            return "421 4.3.0 gone"  # never reaches the client
        if self.refuse is not None:
            return self.refuse
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        self.received.append(
            Received(str(envelope.mail_from), list(envelope.rcpt_tos), email.message_from_bytes(content))
        )
        return "250 OK"


class _Credentials:
    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == (
            self.username,
            self.password,
        )
        return AuthResult(success=ok, handled=False)


@dataclass
class SmtpServer:
    controller: Controller
    sink: MailSink
    port: int

    def stop(self) -> None:
        self.controller.stop()


def start_smtp(
    mode: str = "plain",
    *,
    username: str | None = None,
    password: str | None = None,
    port: int | None = None,
    sink: MailSink | None = None,
) -> SmtpServer:
    """`mode`: plain, starttls (offered, required when credentials are set) or tls (implicit).

    `port` and `sink` bring a stopped server back where it was, keeping what it received.
    """
    sink = sink if sink is not None else MailSink()
    port = port if port is not None else free_port()
    kwargs: dict[str, Any] = {}
    if mode in ("starttls", "tls"):
        context = self_signed_context()
        if mode == "starttls":
            kwargs.update(tls_context=context, require_starttls=username is not None)
        else:
            kwargs.update(ssl_context=context)
    if username is not None and password is not None:
        # Under implicit TLS aiosmtpd cannot see the TLS layer, so only STARTTLS can require it.
        kwargs.update(authenticator=_Credentials(username, password), auth_require_tls=mode == "starttls")
    controller = Controller(sink, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return SmtpServer(controller, sink, port)


MAIL_CLIENT = "https://chat.example.com"


def mail_env(smtp: SmtpServer, **extra: str) -> dict[str, str]:
    """What an auth service needs to send its mail to `smtp` (links point at MAIL_CLIENT)."""
    return {
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp.port),
        "EMAIL_FROM": "noreply@example.com",
        "DOMAIN_CLIENT": MAIL_CLIENT,
        "DOMAIN_SERVER": MAIL_CLIENT,
        "APP_TITLE": "Acme",
        **extra,
    }
