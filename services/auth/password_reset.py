"""Password reset by mail, on LibreChat's paths, without its holes.

A request answers the same, with the same work, for every address (an unknown one still issues a
token and queues a mail the worker drops), and never returns a link. A reset needs the token
mailed to the account (bound to its user, used once, PASSWORD_RESET_EXPIRY), applies the
password policy before the token is spent, then ends every session and device cookie through
the one revocation path and mails the owner that the password changed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from services.auth.accounts import Accounts, user_id_of
from services.auth.audit import AuditTrail
from services.auth.devices import DeviceCookies
from services.auth.email_verification import NOTICE_LIFETIME, nobody, spelled
from services.auth.mail.budget import AccountLimit, MailBudget
from services.auth.mail.outbox import Outbox, OutgoingMail
from services.auth.mail.templates import MailLinks, MailTemplates
from services.auth.one_time_tokens import PASSWORD_RESET, OneTimeTokens
from services.auth.sessions import SessionService
from services.auth.store import Document
from shared.errors import DomainError, ErrorCode


@dataclass(frozen=True)
class ResetSettings:
    app_title: str
    links: MailLinks
    lifetime: dt.timedelta
    per_account: AccountLimit


class PasswordReset:
    def __init__(
        self,
        accounts: Accounts,
        tokens: OneTimeTokens,
        outbox: Outbox,
        budget: MailBudget,
        templates: MailTemplates,
        sessions: SessionService,
        devices: DeviceCookies,
        audit: AuditTrail,
        settings: ResetSettings,
    ) -> None:
        self._accounts = accounts
        self._tokens = tokens
        self._outbox = outbox
        self._budget = budget
        self._templates = templates
        self._sessions = sessions
        self._devices = devices
        self._audit = audit
        self.settings = settings

    async def request(self, email: str) -> None:
        """Mail a reset link to a local account; the same work, and no mail, for anything else."""
        user = await self._accounts.find_by_email(email)
        local = user is not None and user.get("provider", "local") == "local"
        owner = user_id_of(user) if user is not None and local else nobody(email)
        address = str(user.get("email", email)) if user is not None else email
        allowed = await self._budget.allows(PASSWORD_RESET, owner, address, self.settings.per_account)
        fresh = local and allowed
        issued = await self._tokens.issue(
            PASSWORD_RESET, owner if fresh else nobody(email), self.settings.lifetime
        )
        mail = self._templates.render(
            "password_reset",
            app_title=self.settings.app_title,
            name=str((user or {}).get("name") or address),
            email=address,
            link=self.settings.links.reset(issued.token, owner),
            valid_for=spelled(self.settings.lifetime),
        )
        await self._outbox.enqueue(
            OutgoingMail(
                "password_reset", address, mail.subject, mail.text, mail.html, issued.expires_at, not fresh
            )
        )
        if fresh and user is not None:
            await self._audit.record("password_reset_requested", user_id=owner)

    async def reset(self, user_id: str, token: str, password: str) -> Document:
        """Set the new password; a bad, used, expired or foreign token is one error."""
        user = await self._accounts.find_by_id(user_id)
        words = [] if user is None else [str(user.get(k) or "") for k in ("email", "username", "name")]
        normalized = await self._accounts.checked_password(password, words)  # before the token is spent
        used_for = await self._tokens.use(PASSWORD_RESET, token, user_id=user_id)
        if user is None or used_for is None or used_for != user_id_of(user):
            raise DomainError(ErrorCode.INVALID_RESET_TOKEN, "The reset link is invalid or has expired.")
        await self._accounts.set_password(user, normalized)
        owner = user_id_of(user)
        revoked = await self._sessions.revoke(user_id=owner, reason="password_reset", actor=owner)
        await self._devices.bump_epoch(owner)
        await self._audit.record("password_reset", user_id=owner, sessions=revoked)
        await self.notify_changed(user)
        return user

    async def notify_changed(self, user: Document) -> None:
        """The owner hears of every password change (when mail is configured)."""
        if not self._outbox.settings.configured:
            return
        address = str(user.get("email", ""))
        mail = self._templates.render(
            "password_changed",
            app_title=self.settings.app_title,
            name=str(user.get("name") or address),
            email=address,
        )
        expires = dt.datetime.now(dt.UTC) + NOTICE_LIFETIME
        await self._outbox.enqueue(
            OutgoingMail("password_changed", address, mail.subject, mail.text, mail.html, expires)
        )
