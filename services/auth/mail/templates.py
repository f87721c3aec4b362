"""Mail texts from Jinja2 templates, one text and one HTML part per kind of mail.

The shipped templates live beside this module; `EMAIL_TEMPLATES_DIR` can override any of them
(a file of the same name there wins). HTML is autoescaped, so a user's name cannot inject markup;
links are built here exactly as LibreChat builds them, so its web client's pages work unchanged,
or lead to the portal's own pages when there is no separate web client (`MailLinks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape

SHIPPED = Path(__file__).with_name("templates")
KINDS = (
    "verify_email",
    "password_reset",
    "password_changed",
    "register_existing",
    "two_factor_enabled",
    "two_factor_disabled",
    "passkey_added",
)


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


def verification_link(domain_client: str, token: str, email: str) -> str:
    """`${DOMAIN_CLIENT}/verify?token=…&email=…`, LibreChat's verification page."""
    return f"{domain_client.rstrip('/')}/verify?token={quote(token, safe='')}&email={quote(email, safe='')}"


def reset_link(domain_client: str, token: str, user_id: str) -> str:
    """`${DOMAIN_CLIENT}/reset-password?token=…&userId=…`, LibreChat's reset page."""
    query = f"token={quote(token, safe='')}&userId={quote(user_id, safe='')}"
    return f"{domain_client.rstrip('/')}/reset-password?{query}"


def portal_verification_link(domain_server: str, token: str, email: str) -> str:
    """`${DOMAIN_SERVER}/portal/verify-email?token=…&email=…`, the portal's page."""
    query = f"token={quote(token, safe='')}&email={quote(email, safe='')}"
    return f"{domain_server.rstrip('/')}/portal/verify-email?{query}"


def portal_reset_link(domain_server: str, token: str, user_id: str) -> str:
    """`${DOMAIN_SERVER}/portal/reset-password?token=…&userId=…`, the portal's page."""
    query = f"token={quote(token, safe='')}&userId={quote(user_id, safe='')}"
    return f"{domain_server.rstrip('/')}/portal/reset-password?{query}"


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def _portal_url(url: str | None) -> str | None:
    """`scheme://host[:port]/path` without a trailing slash, to compare with the portal's URL."""
    origin = _origin(url)
    if origin is None or url is None:
        return None
    return origin + urlsplit(url.strip()).path.rstrip("/")


@dataclass(frozen=True)
class MailLinks:
    """Where mail links lead: the portal's pages when `DOMAIN_CLIENT` is unset or is the portal
    itself (`${DOMAIN_SERVER}/portal`), LibreChat's pages on `DOMAIN_CLIENT` otherwise.

    A `DOMAIN_CLIENT` equal to `DOMAIN_SERVER` is LibreChat's usual one-origin deployment: its
    web client serves `/verify` and `/reset-password` there, so the links stay LibreChat's.
    """

    domain_client: str | None
    domain_server: str | None

    @property
    def to_portal(self) -> bool:
        server = _origin(self.domain_server)
        if server is None:
            return False
        client = _portal_url(self.domain_client)
        return client is None or client == server + "/portal"

    def verification(self, token: str, email: str) -> str:
        if self.to_portal:
            return portal_verification_link(self.domain_server or "", token, email)
        return verification_link(self.domain_client or "", token, email)

    def reset(self, token: str, user_id: str) -> str:
        if self.to_portal:
            return portal_reset_link(self.domain_server or "", token, user_id)
        return reset_link(self.domain_client or "", token, user_id)


class MailTemplates:
    def __init__(self, override_dir: str | None = None) -> None:
        loaders = [FileSystemLoader(str(SHIPPED))]
        if override_dir:
            loaders.insert(0, FileSystemLoader(override_dir))
        self._env = Environment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=StrictUndefined,  # a template naming a value we do not pass fails loudly
            keep_trailing_newline=True,
        )

    def render(self, kind: str, **values: Any) -> RenderedMail:
        if kind not in KINDS:
            raise ValueError(f"unknown mail kind {kind!r}")
        subject = self._env.get_template(f"{kind}.subject.txt").render(**values).strip()
        text = self._env.get_template(f"{kind}.txt").render(**values)
        html = self._env.get_template(f"{kind}.html").render(**values)
        return RenderedMail(subject=" ".join(subject.split()), text=text, html=html)
