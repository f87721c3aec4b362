"""E-mail verification: a single-use link mailed at registration (and on request), and the check.

Every answer that could tell whether an address has an account is the same, and costs the same
work: an unknown or already verified address still gets a token issued and a mail queued, which
the outbox worker drops (`suppress`). Tokens live EMAIL_VERIFICATION_EXPIRY (24 h by default:
the mail may be read the next day; a reset link lives much shorter).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from services.auth.accounts import Accounts, user_id_of
from services.auth.audit import AuditTrail
from services.auth.mail.budget import AccountLimit, MailBudget
from services.auth.mail.outbox import Outbox, OutgoingMail
from services.auth.mail.templates import MailLinks, MailTemplates
from services.auth.one_time_tokens import VERIFY_EMAIL, OneTimeTokens
from services.auth.store import Document
from shared.errors import DomainError, ErrorCode

NOTICE_LIFETIME = dt.timedelta(days=1)  # a notice carries no token; it is simply stale after a day


def spelled(lifetime: dt.timedelta) -> str:
    """`24 hours`, `15 minutes`: what a mail says about its link."""
    minutes = int(lifetime.total_seconds() // 60)
    if minutes % 60 == 0 and minutes >= 60:
        hours = minutes // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


@dataclass(frozen=True)
class VerificationSettings:
    app_title: str
    links: MailLinks
    lifetime: dt.timedelta
    per_account: AccountLimit


class EmailVerification:
    def __init__(
        self,
        accounts: Accounts,
        tokens: OneTimeTokens,
        outbox: Outbox,
        budget: MailBudget,
        templates: MailTemplates,
        audit: AuditTrail,
        settings: VerificationSettings,
    ) -> None:
        self._accounts = accounts
        self._tokens = tokens
        self._outbox = outbox
        self._budget = budget
        self._templates = templates
        self._audit = audit
        self.settings = settings

    @property
    def enabled(self) -> bool:
        """Mail is configured: new addresses are verified by mail."""
        return self._outbox.settings.configured

    async def send(self, user: Document) -> None:
        await self._mail_link(
            str(user.get("email", "")), user_id_of(user), str(user.get("name") or ""), False
        )

    async def _mail_link(self, email: str, owner: str, name: str, suppress: bool) -> None:
        issued = await self._tokens.issue(VERIFY_EMAIL, owner, self.settings.lifetime)
        mail = self._templates.render(
            "verify_email",
            app_title=self.settings.app_title,
            name=name or email,
            email=email,
            link=self.settings.links.verification(issued.token, email),
            valid_for=spelled(self.settings.lifetime),
        )
        await self._outbox.enqueue(
            OutgoingMail(
                "verify_email", email, mail.subject, mail.text, mail.html, issued.expires_at, suppress
            )
        )

    async def resend(self, email: str) -> None:
        """A new link for an unverified account; the same work, and no mail, for anything else."""
        user = await self._accounts.find_by_email(email)
        owner = user_id_of(user) if user is not None else nobody(email)
        address = str(user.get("email", email)) if user is not None else email
        allowed = await self._budget.allows(VERIFY_EMAIL, owner, address, self.settings.per_account)
        if user is not None and user.get("emailVerified") is not True and allowed:
            await self.send(user)
        else:
            await self._mail_link(address, nobody(email), "", suppress=True)

    async def notify_existing(self, email: str) -> None:
        """Someone registered an address that has an account: its owner hears of it."""
        user = await self._accounts.find_by_email(email)
        if user is None:
            return
        address = str(user.get("email", email))
        wanted = await self._budget.under_hourly_cap("register_existing", address)
        mail = self._templates.render(
            "register_existing",
            app_title=self.settings.app_title,
            name=str(user.get("name") or address),
            email=address,
        )
        expires = dt.datetime.now(dt.UTC) + NOTICE_LIFETIME
        await self._outbox.enqueue(
            OutgoingMail(
                "register_existing", address, mail.subject, mail.text, mail.html, expires, not wanted
            )
        )

    async def verify(self, email: str, token: str) -> Document:
        """Mark the address verified; a bad, used or expired token (or a foreign one) is one error."""
        user = await self._accounts.find_by_email(email)
        owner = user_id_of(user) if user is not None else nobody(email)
        used_for = await self._tokens.use(VERIFY_EMAIL, token, user_id=owner)
        if user is None or used_for is None:
            raise DomainError(
                ErrorCode.INVALID_VERIFICATION_TOKEN, "The verification link is invalid or has expired."
            )
        await self._accounts.mark_email_verified(user)
        await self._audit.record("email_verified", user_id=user_id_of(user))
        return user


def nobody(email: str) -> str:
    """A token owner that is no user: tokens issued for unknown addresses verify nothing."""
    return "none:" + hashlib.sha256(email.encode()).hexdigest()[:32]
