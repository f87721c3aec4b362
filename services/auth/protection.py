"""What auth asks moderation before doing expensive work, and how it answers the client.

Auth never decides windows or scores: it reports `login` (and, with `second_factor`, the
login's second step), `register`, `refresh`, `reset_password` and `verify_email` before any
hashing or mail (a limited or banned client costs no argon2 work), reports `login_failed` after
a failure, and turns the answers into the domain errors `RateLimited` (429 `rate_limited`) or
`Banned` (403 `banned`), which the API layer renders. A user's ban is revealed only after a
correct password (or on refresh), so a ban never reveals that an account exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.auth.counters import DENIALS
from services.auth.devices import DeviceCookies
from services.auth.moderation_client import BanInfo, Decision, ModerationClient, account_subject
from services.auth.store import UserState
from shared.crypto import derive_key
from shared.errors import DomainError, ErrorCode


class Banned(DomainError):
    """403 `banned`: the reason, when it ends, and Retry-After."""

    def __init__(self, ban: BanInfo) -> None:
        retry_after = max(1, ban.retry_after())
        super().__init__(
            ErrorCode.BANNED,
            "Access is temporarily banned.",
            retry_after=retry_after,
            details={"reason": ban.reason, "expires_at": ban.expires_at_iso(), "retry_after": retry_after},
        )
        self.ban = ban


class RateLimited(DomainError):
    """429 `rate_limited`; the API layer adds the `RateLimit-*` headers from `limit`/`remaining`."""

    def __init__(self, decision: Decision) -> None:
        retry_after = max(1, decision.retry_after)
        super().__init__(
            ErrorCode.RATE_LIMITED,
            "Too many attempts; retry later.",
            retry_after=retry_after,
            details={"retry_after": retry_after},
        )
        self.limit = decision.limit
        self.remaining = max(0, decision.remaining)


def banned_error(ban: BanInfo) -> Banned:
    return Banned(ban)


def limited_error(decision: Decision) -> RateLimited:
    return RateLimited(decision)


@dataclass(frozen=True)
class LoginGate:
    """What the pre-check learned, carried to the failure report."""

    ip: str
    account: str
    device_trusted: bool
    # The trusted cookie's user and that user's state, read before the login looks anything up.
    device_user: str | None = None
    device_user_state: UserState | None = None


class Protection:
    def __init__(self, client: ModerationClient, devices: DeviceCookies, account_secret: str) -> None:
        self.client = client
        self.devices = devices
        self._account_key = derive_key(account_secret, b"account")

    def account(self, email_normalized: str) -> str:
        return account_subject(email_normalized, self._account_key)

    @staticmethod
    def _enforce(decision: Decision, event: str) -> None:
        if decision.ban is not None:
            DENIALS.labels(event, "banned").inc()
            raise banned_error(decision.ban)
        if not decision.allowed:
            DENIALS.labels(event, "limited").inc()
            raise limited_error(decision)

    def ip_ban(self, ip: str) -> BanInfo | None:
        return self.client.is_banned(ip=ip)

    def user_ban(self, user_id: str) -> BanInfo | None:
        return self.client.is_banned(user_id=user_id)

    async def before_login(self, ip: str, email_normalized: str, device_cookie: str | None) -> LoginGate:
        account = self.account(email_normalized)
        device = await self.devices.check(device_cookie, account) if device_cookie else None
        gate = LoginGate(
            ip=ip,
            account=account,
            device_trusted=device is not None,
            device_user=device[0].user_id if device else None,
            device_user_state=device[1] if device else None,
        )
        decision = await self.client.event(
            "login", ip=ip, account=account, device_trusted=gate.device_trusted
        )
        self._enforce(decision, "login")
        return gate

    async def after_login_failure(self, gate: LoginGate) -> None:
        await self.client.event(
            "login_failed", ip=gate.ip, account=gate.account, device_trusted=gate.device_trusted
        )

    async def before_two_factor(self, ip: str, login_email: str | None) -> None:
        """The login's second step: per IP, and per account when the temp token names one
        (TWO_FACTOR_TEMP_MAX / _WINDOW); before the code is looked at."""
        account = self.account(login_email) if login_email else None
        decision = await self.client.event("login", ip=ip, account=account, second_factor=True)
        self._enforce(decision, "two_factor_temp")

    async def after_two_factor_failure(self, ip: str, login_email: str | None) -> None:
        """A wrong second factor counts against the account as a wrong password does."""
        if login_email:
            await self.client.event("login_failed", ip=ip, account=self.account(login_email))

    async def before_passkey_options(self, ip: str) -> None:
        """A passkey sign-in starts: a `login` per address (no account is named yet), before any work."""
        self._enforce(await self.client.event("login", ip=ip), "login")

    async def before_passkey_assertion(self, ip: str) -> None:
        """Its answer: the login's second-step limit per address, before the assertion is looked at.

        Every answer counts here, right or wrong, so no `login_failed` follows a failure: that
        event names an account, and a failed assertion proves nothing about whose it was."""
        self._enforce(await self.client.event("login", ip=ip, second_factor=True), "two_factor_temp")

    async def before_register(self, ip: str) -> None:
        self._enforce(await self.client.event("register", ip=ip), "register")

    async def before_reset_password(self, ip: str, *, submission: bool = False) -> None:
        """A reset request, or (submission) a reset token being used: per address, before any work."""
        event = "reset_password"
        self._enforce(await self.client.event(event, ip=ip, submission=submission), event)

    async def before_verify_email(self, ip: str, *, submission: bool = False) -> None:
        """A verification mail asked for again, or (submission) a verification token being used."""
        event = "verify_email"
        self._enforce(await self.client.event(event, ip=ip, submission=submission), event)

    async def before_refresh(self, ip: str) -> None:
        self._enforce(await self.client.event("refresh", ip=ip), "refresh")

    async def before_logout(self, ip: str, token_verified: bool) -> None:
        """Limit logouts per address; a banned address gets 403 from memory, no store lookup.

        A ban must never keep a session alive, so an access token that verifies (signature
        and expiry, no store) still lets a banned address end its session.
        """
        ban = self.ip_ban(ip)
        if ban is not None:
            if token_verified:
                return
            DENIALS.labels("logout", "banned").inc()
            raise banned_error(ban)
        self._enforce(await self.client.event("logout", ip=ip), "logout")
