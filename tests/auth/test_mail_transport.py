"""Mail settings as LibreChat names them, and delivery through a real SMTP server (aiosmtpd):
plain, STARTTLS and implicit TLS with a self-signed certificate, with and without credentials."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.smtp import SmtpServer, start_smtp
from services.auth.mail.settings import MailSettings, load_mail_settings
from services.auth.mail.transport import DeliveryFailed, build_message, send
from shared.config import ConfigError, Env

DOMAINS = {"DOMAIN_CLIENT": "https://chat.example.com", "DOMAIN_SERVER": "https://chat.example.com"}


def load(**variables: str) -> MailSettings:
    return load_mail_settings(
        Env([variables]), "Acme", variables.get("DOMAIN_CLIENT"), variables.get("DOMAIN_SERVER")
    )


def refused(name: str, **variables: str) -> None:
    with pytest.raises(ConfigError) as error:
        load(**variables)
    assert error.value.name == name, str(error.value)


def test_unset_mail_is_not_configured() -> None:
    settings = load()
    assert not settings.configured and settings.sender_name == "Acme"


def test_host_and_sender_configure_mail_with_opportunistic_starttls() -> None:
    settings = load(EMAIL_HOST="smtp.example.com", EMAIL_FROM="noreply@example.com", **DOMAINS)
    assert settings.configured and settings.port == 25 and settings.encryption == "opportunistic"


def test_well_known_services_map_to_host_port_and_encryption() -> None:
    settings = load(EMAIL_SERVICE="Gmail", EMAIL_FROM="a@example.com", **DOMAINS)
    assert (settings.host, settings.port, settings.encryption) == ("smtp.gmail.com", 465, "tls")
    settings = load(EMAIL_SERVICE="office365", EMAIL_FROM="a@example.com", **DOMAINS)
    assert (settings.host, settings.port, settings.encryption) == ("smtp.office365.com", 587, "starttls")


def test_domain_server_alone_is_enough_for_mail() -> None:
    """The links then lead to the portal's own pages on DOMAIN_SERVER."""
    settings = load(EMAIL_HOST="h", EMAIL_FROM="a@example.com", DOMAIN_SERVER="https://auth.example.com")
    assert settings.configured


@pytest.mark.parametrize(
    ("name", "variables"),
    [
        ("EMAIL_SERVICE", {"EMAIL_SERVICE": "carrier-pigeon"}),
        ("EMAIL_ENCRYPTION", {"EMAIL_HOST": "h", "EMAIL_ENCRYPTION": "ssl"}),
        ("EMAIL_PASSWORD", {"EMAIL_HOST": "h", "EMAIL_ENCRYPTION": "tls", "EMAIL_USERNAME": "u"}),
        ("EMAIL_USERNAME", {"EMAIL_HOST": "h", "EMAIL_ENCRYPTION": "tls", "EMAIL_PASSWORD": "p"}),
        ("EMAIL_ENCRYPTION", {"EMAIL_HOST": "h", "EMAIL_USERNAME": "u", "EMAIL_PASSWORD": "p"}),
        ("MAILGUN_API_KEY", {"MAILGUN_API_KEY": "key"}),
        ("DOMAIN_SERVER", {"EMAIL_HOST": "h", "EMAIL_FROM": "a@example.com"}),
        (
            "DOMAIN_SERVER",
            {"EMAIL_HOST": "h", "EMAIL_FROM": "a@example.com", "DOMAIN_CLIENT": "https://c.example"},
        ),
        ("EMAIL_TEMPLATES_DIR", {"EMAIL_TEMPLATES_DIR": "/nonexistent/templates"}),
    ],
)
def test_half_or_unsafe_mail_settings_name_the_variable(name: str, variables: dict[str, str]) -> None:
    refused(name, **variables)


@pytest.fixture
def smtp(request: pytest.FixtureRequest) -> Iterator[SmtpServer]:
    mode, credentials = request.param
    username, password = ("mailer", "mail-secret") if credentials else (None, None)
    server = start_smtp(mode, username=username, password=password)
    try:
        yield server
    finally:
        server.stop()


def settings_for(server: SmtpServer, encryption: str, credentials: bool) -> MailSettings:
    return MailSettings(
        host="127.0.0.1",
        port=server.port,
        encryption=encryption,  # type: ignore[arg-type]
        allow_self_signed=True,
        username="mailer" if credentials else None,
        password="mail-secret" if credentials else None,
        sender="noreply@example.com",
        sender_name="Acme",
    )


@pytest.mark.parametrize(
    ("smtp", "encryption", "credentials"),
    [
        (("plain", False), "opportunistic", False),
        (("starttls", False), "opportunistic", False),
        (("starttls", True), "starttls", True),
        (("tls", True), "tls", True),
    ],
    indirect=["smtp"],
    ids=["plain", "opportunistic-starttls", "starttls-login", "implicit-tls-login"],
)
async def test_a_mail_arrives_with_its_parts_and_stable_id(
    smtp: SmtpServer, encryption: str, credentials: bool
) -> None:
    settings = settings_for(smtp, encryption, credentials)
    message = build_message(
        settings, "user@example.com", "Hello", "text body", "<p>html body</p>", "<id-1@example.com>"
    )
    await send(settings, message)
    assert len(smtp.sink.received) == 1
    got = smtp.sink.received[0]
    assert got.recipients == ["user@example.com"]
    assert got.message["Message-ID"] == "<id-1@example.com>"
    assert got.message["From"] == "Acme <noreply@example.com>"
    parts = {part.get_content_type(): part.get_payload(decode=True) for part in got.message.walk()}
    assert b"text body" in parts["text/plain"] and b"html body" in parts["text/html"]


@pytest.mark.parametrize("smtp", [("starttls", True)], indirect=True)
async def test_a_self_signed_certificate_is_refused_unless_allowed(smtp: SmtpServer) -> None:
    settings = settings_for(smtp, "starttls", True)
    strict = MailSettings(**{**settings.__dict__, "allow_self_signed": False})
    with pytest.raises(DeliveryFailed) as failure:
        await send(strict, build_message(strict, "user@example.com", "Hi", "x", None))
    assert not failure.value.permanent
    assert smtp.sink.received == []


@pytest.mark.parametrize("smtp", [("plain", False)], indirect=True)
async def test_refusals_are_temporary_or_permanent_by_their_code(smtp: SmtpServer) -> None:
    settings = settings_for(smtp, "opportunistic", False)
    message = build_message(settings, "user@example.com", "Hi", "x", None)
    smtp.sink.refuse = "451 4.3.0 try again later"
    with pytest.raises(DeliveryFailed) as busy:
        await send(settings, message)
    assert not busy.value.permanent
    smtp.sink.refuse = "554 5.7.1 rejected"
    with pytest.raises(DeliveryFailed) as rejected:
        await send(settings, message)
    assert rejected.value.permanent


@pytest.mark.parametrize("smtp", [("plain", False)], indirect=True)
async def test_a_server_that_vanishes_mid_send_is_a_temporary_failure(smtp: SmtpServer) -> None:
    settings = settings_for(smtp, "opportunistic", False)
    smtp.sink.vanish = True
    with pytest.raises(DeliveryFailed) as failure:
        await send(settings, build_message(settings, "user@example.com", "Hi", "x", None))
    assert not failure.value.permanent and not smtp.sink.received


async def test_an_unreachable_server_is_a_temporary_failure() -> None:
    from harness import free_port

    settings = MailSettings(host="127.0.0.1", port=free_port(), sender="noreply@example.com")
    with pytest.raises(DeliveryFailed) as failure:
        await send(settings, build_message(settings, "user@example.com", "Hi", "x", None))
    assert not failure.value.permanent
