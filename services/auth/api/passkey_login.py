"""The passkey sign-in shared by `/api/auth/webauthn/login/verify` and the portal.

The same rules as a password login after the credential is checked: a banned user is told
only now, an unverified address is refused as `/api/auth/login` refuses it, and the caller
starts the session exactly as after a password, with amr `hwk` and no second factor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.auth.accounts import user_id_of
from services.auth.context import AuthContext
from services.auth.counters import LOGINS
from services.auth.passkeys.manager import invalid_passkey
from services.auth.protection import banned_error
from services.auth.store import Document
from shared.errors import ApiError, DomainError, ErrorCode


@dataclass(frozen=True)
class PasskeyChecked:
    user: Document
    epoch: int


async def start_passkey_login(context: AuthContext, ip: str) -> dict[str, Any]:
    """The discoverable request options, after moderation's `login` event (bans apply)."""
    passkeys = context.passkeys
    if not passkeys.enabled:
        raise DomainError(ErrorCode.PASSKEYS_DISABLED, "Passkeys are not configured on this server.")
    await context.protection.before_passkey_options(ip)
    return await passkeys.authentication_options()


async def check_passkey_login(context: AuthContext, credential: dict[str, Any], ip: str) -> PasskeyChecked:
    protection = context.protection
    if not context.passkeys.enabled:
        raise DomainError(ErrorCode.PASSKEYS_DISABLED, "Passkeys are not configured on this server.")
    await protection.before_passkey_assertion(ip)

    async def epoch_of(user_id: str) -> int:
        return (await context.sessions.state(user_id)).session_epoch

    try:
        login = await context.passkeys.authenticate(credential, ip, epoch_of)
    except DomainError as exc:
        if exc.code in (ErrorCode.INVALID_PASSKEY, ErrorCode.PASSKEY_CHALLENGE_INVALID):
            LOGINS.labels("passkey_failure").inc()
        raise
    user = await context.accounts.find_by_id(login.user_id)
    if user is None:
        await context.audit.record("passkey_login_failed", user_id=login.user_id, ip=ip, reason="no_user")
        raise invalid_passkey()
    ban = protection.user_ban(user_id_of(user))
    if ban is not None:
        LOGINS.labels("banned").inc()
        await context.audit.record("login_banned", user_id=login.user_id, ip=ip, outcome="refused")
        raise banned_error(ban)
    if user.get("emailVerified") is not True and not context.settings.allow_unverified_email_login:
        LOGINS.labels("email_not_verified").inc()
        await context.audit.record("login_unverified", user_id=login.user_id, ip=ip, outcome="refused")
        raise ApiError(422, ErrorCode.EMAIL_NOT_VERIFIED, "Verify your email address before logging in.")
    await context.audit.record("passkey_login", user_id=login.user_id, ip=ip, passkey_id=login.passkey_id)
    return PasskeyChecked(user, login.epoch)
