"""The owner hears by mail when two-factor sign-in is turned on or off (when mail is configured):
a thief who changed it with a stolen password and code is noticed."""

from __future__ import annotations

import datetime as dt

from services.auth.email_verification import NOTICE_LIFETIME
from services.auth.mail.outbox import Outbox, OutgoingMail
from services.auth.mail.templates import MailTemplates
from services.auth.store import Document


class TwoFactorNotices:
    def __init__(self, outbox: Outbox, templates: MailTemplates, app_title: str) -> None:
        self._outbox = outbox
        self._templates = templates
        self._app_title = app_title

    async def send(self, user: Document, kind: str, *, by_operator: bool = False) -> None:
        if not self._outbox.settings.configured:
            return
        address = str(user.get("email", ""))
        mail = self._templates.render(
            kind,
            app_title=self._app_title,
            name=str(user.get("name") or address),
            email=address,
            by_operator=by_operator,
        )
        expires = dt.datetime.now(dt.UTC) + NOTICE_LIFETIME
        await self._outbox.enqueue(OutgoingMail(kind, address, mail.subject, mail.text, mail.html, expires))
