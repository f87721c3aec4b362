"""LibreChat's mail variables, checked at start-up: a half or unsafe configuration never starts.

Mail is "configured" when a host (or a known `EMAIL_SERVICE`) and `EMAIL_FROM` are set. Unset
`EMAIL_ENCRYPTION` means opportunistic STARTTLS, as nodemailer does; credentials are never sent
over a connection without TLS, so they require `tls` or `starttls`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from shared.config import ConfigError, Env

Encryption = Literal["tls", "starttls", "opportunistic"]

# nodemailer's well-known services authgate maps (name lower-cased → host, port, encryption).
WELL_KNOWN: dict[str, tuple[str, int, Encryption]] = {
    "gmail": ("smtp.gmail.com", 465, "tls"),
    "outlook": ("smtp-mail.outlook.com", 587, "starttls"),
    "hotmail": ("smtp-mail.outlook.com", 587, "starttls"),
    "outlook365": ("smtp.office365.com", 587, "starttls"),
    "office365": ("smtp.office365.com", 587, "starttls"),
    "sendgrid": ("smtp.sendgrid.net", 587, "starttls"),
    "mailgun": ("smtp.mailgun.org", 465, "tls"),
    **{
        f"ses-{region}": (f"email-smtp.{region}.amazonaws.com", 465, "tls")
        for region in ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1")
    },
}
# Other providers' APIs LibreChat supports; authgate sends SMTP only, so these must not be ignored.
FOREIGN_PROVIDER_VARIABLES = ("MAILGUN_API_KEY", "MAILGUN_DOMAIN", "MAILGUN_HOST")


@dataclass(frozen=True)
class MailSettings:
    host: str | None = None
    port: int = 25
    encryption: Encryption = "opportunistic"
    tls_hostname: str | None = None
    allow_self_signed: bool = False
    username: str | None = None
    password: str | None = None
    sender: str | None = None
    sender_name: str = "authgate"
    templates_dir: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.host and self.sender)


def load_mail_settings(
    env: Env, app_title: str, domain_client: str | None, domain_server: str | None
) -> MailSettings:
    for name in FOREIGN_PROVIDER_VARIABLES:
        if env.string(name):
            raise ConfigError(
                name, "is not supported: authgate sends mail over SMTP (EMAIL_HOST or EMAIL_SERVICE)"
            )
    host = env.string("EMAIL_HOST")
    port = env.integer("EMAIL_PORT", 25, minimum=1)
    encryption: Encryption = "opportunistic"
    service = env.string("EMAIL_SERVICE")
    if service:
        known = WELL_KNOWN.get(service.strip().lower())
        if known is None:
            raise ConfigError("EMAIL_SERVICE", f"unknown service; known: {', '.join(sorted(WELL_KNOWN))}")
        if host is None:
            host, port, encryption = known[0], env.integer("EMAIL_PORT", known[1], minimum=1), known[2]
    chosen = env.string("EMAIL_ENCRYPTION")
    if chosen:
        if chosen.lower() not in ("tls", "starttls"):
            raise ConfigError("EMAIL_ENCRYPTION", "must be tls, starttls or unset")
        encryption = "tls" if chosen.lower() == "tls" else "starttls"
    username, password = env.string("EMAIL_USERNAME"), env.secret("EMAIL_PASSWORD")
    if bool(username) != bool(password):
        raise ConfigError(
            "EMAIL_PASSWORD" if username else "EMAIL_USERNAME",
            "EMAIL_USERNAME and EMAIL_PASSWORD go together",
        )
    if username and encryption == "opportunistic":
        raise ConfigError(
            "EMAIL_ENCRYPTION", "must be tls or starttls when EMAIL_USERNAME is set: credentials need TLS"
        )
    settings = MailSettings(
        host=host,
        port=port,
        encryption=encryption,
        tls_hostname=env.string("EMAIL_ENCRYPTION_HOSTNAME"),
        allow_self_signed=env.boolean("EMAIL_ALLOW_SELFSIGNED", False),
        username=username,
        password=password,
        sender=env.string("EMAIL_FROM"),
        sender_name=env.string("EMAIL_FROM_NAME") or app_title,
        templates_dir=_templates_dir(env.string("EMAIL_TEMPLATES_DIR")),
    )
    if settings.configured and not domain_server:
        raise ConfigError(
            "DOMAIN_SERVER",
            "is required when mail is configured (mail links lead to the portal there, "
            "or to LibreChat's pages on DOMAIN_CLIENT when that is another origin)",
        )
    return settings


def _templates_dir(value: str | None) -> str | None:
    if value and not Path(value).is_dir():
        raise ConfigError("EMAIL_TEMPLATES_DIR", f"is not a directory: {value}")
    return value
