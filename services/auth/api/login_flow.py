"""The password login shared by `/api/auth/login` and the portal's sign-in page.

One function checks the credentials with the same moderation events (`login`,
`login_failed`), the same device-cookie rules, the same ban and verification answers and
the same two-factor hand-off, so the JSON API and the HTML form cannot drift apart. The
callers only differ in how they answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.auth.accounts import normalize_email, user_id_of
from services.auth.context import AuthContext
from services.auth.counters import LOGINS
from services.auth.protection import LoginGate, banned_error
from services.auth.store import Document, UserState
from shared.errors import ApiError, DomainError, ErrorCode

INVALID_CREDENTIALS = ApiError(401, ErrorCode.INVALID_CREDENTIALS, "Invalid email or password.")


def invalid_credentials() -> ApiError:
    return ApiError(INVALID_CREDENTIALS.status, INVALID_CREDENTIALS.code, INVALID_CREDENTIALS.message)


@dataclass(frozen=True)
class PasswordChecked:
    """A correct password for an unbanned, allowed account; `temp_token` when 2FA comes next."""

    user: Document
    epoch: int
    email: str
    gate: LoginGate
    device_epoch: int
    temp_token: str | None


async def check_password_login(
    context: AuthContext,
    raw_email: str,
    password: str,
    ip: str,
    device_cookie: str | None,
    *,
    in_body: bool,
) -> PasswordChecked:
    """Raises 401 `invalid_credentials` alike for an unknown email and a wrong password."""
    protection = context.protection
    email = normalize_email(raw_email)
    gate = await protection.before_login(ip, email, device_cookie)
    # The session epoch is read before the credentials are: a revocation that lands while the
    # password is being checked ends the session this login is about to create.
    found = await context.accounts.find_for_login(raw_email)
    state = UserState()
    if found is not None:
        if gate.device_user_state is not None and gate.device_user == user_id_of(found):
            state = gate.device_user_state  # read by the gate before the user: already as of it
        else:
            state = await context.sessions.state(user_id_of(found))
            found = await context.accounts.find_by_id(user_id_of(found))  # role and hash as of that epoch
    epoch = state.session_epoch
    user = await context.accounts.check_password(found, password)
    if user is None:
        await protection.after_login_failure(gate)
        LOGINS.labels("failure").inc()
        await context.audit.record("login_failed", ip=ip, outcome="failure")
        raise invalid_credentials()
    # Only now, after a correct password, may a user's ban be revealed.
    ban = protection.user_ban(user_id_of(user))
    if ban is not None:
        LOGINS.labels("banned").inc()
        await context.audit.record("login_banned", user_id=user_id_of(user), ip=ip, outcome="refused")
        raise banned_error(ban)
    if user.get("emailVerified") is not True and not context.settings.allow_unverified_email_login:
        # Only after the correct password: an unknown address and a wrong password stay 401.
        LOGINS.labels("email_not_verified").inc()
        await context.audit.record("login_unverified", user_id=user_id_of(user), ip=ip, outcome="refused")
        raise ApiError(422, ErrorCode.EMAIL_NOT_VERIFIED, "Verify your email address before logging in.")
    temp = await _second_factor(context, user, ip, epoch, in_body=in_body, email=email)
    return PasswordChecked(user, epoch, email, gate, state.device_epoch, temp)


async def _second_factor(
    context: AuthContext, user: Document, ip: str, epoch: int, *, in_body: bool, email: str
) -> str | None:
    """A user with 2FA gets a temp token, no cookie and no session; None for everyone else.

    A LibreChat enrolment that cannot be checked here (no CREDS_KEY) is refused with 403
    `2fa_required`; like every answer here, only after the correct password.
    """
    user_id = user_id_of(user)
    try:
        temp = await context.two_factor.begin_login(user, epoch, in_body=in_body, login_email=email)
    except DomainError as exc:
        if exc.code != ErrorCode.TWO_FACTOR_REQUIRED:
            raise
        LOGINS.labels("2fa_required").inc()
        await context.audit.record("login_2fa_required", user_id=user_id, ip=ip, outcome="refused")
        raise
    if temp is None:
        return None
    LOGINS.labels("2fa_pending").inc()
    await context.audit.record("login_2fa_pending", user_id=user_id, ip=ip)
    return temp
