"""A signed-in user changes the password: the current one first, then every other session ends.

The current password is checked behind the login limiter (the same `login` and `login_failed`
events, so a stolen access token cannot be used to guess it faster than a login could), the
policy applies to the new one, the calling session survives, and the owner gets a mail.
"""

from __future__ import annotations

from services.auth.accounts import Accounts, normalize_email, user_id_of
from services.auth.audit import AuditTrail
from services.auth.password_reset import PasswordReset
from services.auth.protection import Protection
from services.auth.sessions import SessionService
from shared.errors import DomainError, ErrorCode


def wrong_password() -> DomainError:
    return DomainError(ErrorCode.INVALID_CREDENTIALS, "The current password is not correct.")


class PasswordChange:
    def __init__(
        self,
        accounts: Accounts,
        protection: Protection,
        sessions: SessionService,
        audit: AuditTrail,
        notices: PasswordReset,
    ) -> None:
        self._accounts = accounts
        self._protection = protection
        self._sessions = sessions
        self._audit = audit
        self._notices = notices

    async def change(
        self,
        user_id: str,
        keep_session: str,
        current: str,
        new: str,
        *,
        ip: str,
        device_cookie: str | None,
    ) -> int:
        """Set `new` after `current` matches; the number of other sessions ended."""
        user = await self._accounts.find_by_id(user_id)
        if user is None or user.get("provider", "local") != "local":
            raise wrong_password()  # a social account has no password to change
        gate = await self._protection.before_login(
            ip, normalize_email(str(user.get("email", ""))), device_cookie
        )
        if await self._accounts.check_password(user, current) is None:
            await self._protection.after_login_failure(gate)
            await self._audit.record("password_change_failed", user_id=user_id, ip=ip, outcome="failure")
            raise wrong_password()
        words = [str(user.get(k) or "") for k in ("email", "username", "name")]
        normalized = await self._accounts.checked_password(new, words)
        await self._accounts.set_password(user, normalized)
        owner = user_id_of(user)
        ended = await self._sessions.revoke(
            user_id=owner, keep=keep_session, reason="password_changed", actor=owner
        )
        await self._audit.record("password_changed", user_id=owner, ip=ip, sessions=ended)
        await self._notices.notify_changed(user)
        return ended
