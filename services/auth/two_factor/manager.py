"""The two-factor flows: enrol, confirm, check, disable, regenerate, and the login's second step.

State lives in `auth_two_factor`; `users.twoFactorEnabled` mirrors it for LibreChat's clients.
A LibreChat enrolment (`twoFactorEnabled` with a `totpSecret` under CREDS_KEY) is imported on
first use, its backup codes kept as unsalted legacy hashes until they are regenerated. Every
refusal raises before anything changes, except the one-way counters (used steps and codes,
temp-token attempts) that make a code or token single-use.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Literal

import structlog

from services.auth.accounts import Accounts, user_id_of
from services.auth.audit import AuditTrail
from services.auth.store import Document, TwoFactorRepository, UserRepository
from services.auth.two_factor import backup_codes
from services.auth.two_factor.codes import Totp, new_secret, otpauth_url
from services.auth.two_factor.librechat import (
    UndecryptableSecret,
    decrypt_totp_secret,
    librechat_code_hash,
)
from services.auth.two_factor.notices import TwoFactorNotices
from services.auth.two_factor.secrets import SecretSealer, UnreadableSecret
from services.auth.two_factor.temp_tokens import InvalidTempToken, TempClaims, TempTokens
from shared.errors import DomainError, ErrorCode

log = structlog.get_logger("authgate.two_factor")

Requirement = Literal["none", "code", "locked"]


@dataclass(frozen=True)
class Proof:
    """What the user presents: a TOTP code or a backup code (the code wins when both are sent)."""

    token: str | None = None
    backup_code: str | None = None


@dataclass(frozen=True)
class Enrolment:
    otpauth_url: str
    backup_codes: list[str]


@dataclass(frozen=True)
class TwoFactorSettings:
    app_title: str
    creds_key: str | None = None


def _is_sha256_hex(value: object) -> bool:
    """A LibreChat code hash; anything else (hand-edited data) is not imported."""
    return isinstance(value, str) and len(value) == 64 and all(ch in "0123456789abcdef" for ch in value)


def invalid_code() -> DomainError:
    return DomainError(ErrorCode.INVALID_2FA_CODE, "The two-factor code is invalid or was already used.")


def invalid_temp_token() -> DomainError:
    return DomainError(ErrorCode.INVALID_2FA_TOKEN, "The two-factor session is invalid or has expired.")


def not_enabled() -> DomainError:
    return DomainError(ErrorCode.TWO_FACTOR_NOT_ENABLED, "Two-factor authentication is not enabled.")


def locked() -> DomainError:
    return DomainError(
        ErrorCode.TWO_FACTOR_REQUIRED,
        "This account's two-factor enrolment cannot be checked here (CREDS_KEY is not configured).",
    )


class TwoFactor:
    def __init__(
        self,
        repo: TwoFactorRepository,
        users: UserRepository,
        accounts: Accounts,
        sealer: SecretSealer,
        temp_tokens: TempTokens,
        audit: AuditTrail,
        settings: TwoFactorSettings,
        notices: TwoFactorNotices | None = None,
        totp: Totp | None = None,
    ) -> None:
        self._repo = repo
        self._users = users
        self._accounts = accounts
        self.sealer = sealer
        self.temp_tokens = temp_tokens
        self._audit = audit
        self.settings = settings
        self._notices = notices
        self._totp = totp or Totp()

    # State ----------------------------------------------------------------------------------

    async def active(self, user: Document) -> Document | None:
        """The enabled factor, a LibreChat enrolment imported if CREDS_KEY opens it; else None.

        Raises `2fa_required` for a LibreChat enrolment that cannot be read here.
        """
        user_id = user_id_of(user)
        doc = await self._repo.get(user_id)
        if doc is not None and doc.get("enabled") is True:
            return doc
        if user.get("twoFactorEnabled") is not True:
            return None
        stored = user.get("totpSecret")
        if not isinstance(stored, str) or not stored:
            raise locked()
        try:
            secret = decrypt_totp_secret(stored, self.settings.creds_key)
        except UndecryptableSecret as exc:
            log.warning("librechat_2fa_unreadable", user_id=user_id, reason=str(exc))
            raise locked() from None
        legacy = {
            code["codeHash"]: (code.get("usedAt") or True) if code.get("used") else False
            for code in user.get("backupCodes") or []
            if isinstance(code, dict) and _is_sha256_hex(code.get("codeHash"))
        }
        active = {
            "secret": self.sealer.seal(user_id, secret),
            "salt": "",
            "codes": {},
            "legacy_codes": legacy,
        }
        if await self._repo.import_active(user_id, active):
            await self._audit.record("2fa_imported", user_id=user_id, source="librechat")
        doc = await self._repo.get(user_id)
        return doc if doc is not None and doc.get("enabled") is True else None

    async def requirement(self, user: Document) -> Requirement:
        try:
            return "code" if await self.active(user) is not None else "none"
        except DomainError:
            return "locked"

    async def _enabled(self, user: Document) -> Document:
        doc = await self.active(user)
        if doc is None:
            raise not_enabled()
        return doc

    async def _password(self, user: Document, password: str | None) -> None:
        if not password or await self._accounts.check_password(user, password) is None:
            raise DomainError(ErrorCode.INVALID_CREDENTIALS, "The current password is incorrect.")

    async def _check(self, user_id: str, doc: Document, proof: Proof) -> str:
        """Accept the proof once (the step or the code is spent); `totp` or `backup_code`."""
        if proof.token:
            try:
                secret = self.sealer.open(user_id, str(doc.get("secret", "")))
            except UnreadableSecret:
                log.error("totp_secret_unreadable", user_id=user_id)
                raise invalid_code() from None
            last = doc.get("last_step")
            step = self._totp.matching_step(secret, proof.token, last if isinstance(last, int) else None)
            if step is not None and await self._repo.advance_step(user_id, step):
                return "totp"
            raise invalid_code()
        code = proof.backup_code
        if code and backup_codes.plausible(code):
            now = dt.datetime.now(dt.UTC)
            salt = doc.get("salt")
            if salt and await self._repo.use_code(
                user_id, "codes", backup_codes.code_hash(str(salt), code), now
            ):
                return "backup_code"
            if doc.get("legacy_codes") and await self._repo.use_code(
                user_id, "legacy_codes", librechat_code_hash(code), now
            ):
                return "backup_code"
        raise invalid_code()

    # Flows ----------------------------------------------------------------------------------

    async def enable(self, user: Document, password: str | None, proof: Proof) -> Enrolment:
        """A pending enrolment; an account that already has 2FA proves password and factor first.

        A first enrolment may start without the password (LibreChat's older clients GET this
        path with no body); the password is then asked for at confirm, so an access token alone
        never turns on a factor that would lock its owner out.
        """
        user_id = user_id_of(user)
        current = await self.active(user)
        if current is not None or password:
            await self._password(user, password)
        if current is not None:
            await self._check(user_id, current, proof)
        secret = new_secret()
        codes = backup_codes.generate()
        pending = {
            "id": secrets.token_hex(8),
            "secret": self.sealer.seal(user_id, secret),
            "salt": codes.salt,
            "codes": {h: False for h in codes.hashes},
            "password_checked": bool(password),
        }
        await self._repo.set_pending(user_id, pending)
        await self._audit.record("2fa_enrolment_started", user_id=user_id, reenrol=current is not None)
        url = otpauth_url(secret, str(user.get("email", "")), self.settings.app_title)
        return Enrolment(url, codes.plain)

    async def confirm(self, user: Document, token: str, password: str | None = None) -> None:
        """Promote the pending enrolment with a code from it; the password too unless enable had it."""
        user_id = user_id_of(user)
        doc = await self._repo.get(user_id)
        pending = (doc or {}).get("pending")
        if not isinstance(pending, dict):
            raise DomainError(ErrorCode.TWO_FACTOR_NOT_PENDING, "No two-factor enrolment is pending.")
        if pending.get("password_checked") is not True:
            await self._password(user, password)
        try:
            secret = self.sealer.open(user_id, str(pending.get("secret", "")))
        except UnreadableSecret:
            raise invalid_code() from None
        step = self._totp.matching_step(secret, token)
        if step is None:
            raise invalid_code()
        active = {
            "secret": pending["secret"],
            "salt": pending["salt"],
            "codes": pending["codes"],
            "last_step": step,
        }
        if not await self._repo.promote(user_id, str(pending["id"]), active):
            raise DomainError(ErrorCode.TWO_FACTOR_NOT_PENDING, "No two-factor enrolment is pending.")
        await self._users.set_two_factor(user["_id"], True)
        user["twoFactorEnabled"] = True
        await self._audit.record("2fa_enabled", user_id=user_id)
        if self._notices is not None:
            await self._notices.send(user, "two_factor_enabled")

    async def verify(self, user: Document, proof: Proof) -> str:
        doc = await self._enabled(user)
        return await self._check(user_id_of(user), doc, proof)

    async def disable(self, user: Document, password: str | None, proof: Proof) -> None:
        doc = await self._enabled(user)
        await self._password(user, password)
        await self._check(user_id_of(user), doc, proof)
        await self.remove(user, actor=user_id_of(user))

    async def remove(self, user: Document, actor: str) -> None:
        """Turn the second factor off (the owner, or an operator through the CLI)."""
        await self._repo.delete(user_id_of(user))
        await self._users.set_two_factor(user["_id"], False)
        user["twoFactorEnabled"] = False
        await self._audit.record("2fa_disabled", user_id=user_id_of(user), actor=actor)
        if self._notices is not None:
            await self._notices.send(user, "two_factor_disabled", by_operator=actor != user_id_of(user))

    async def regenerate(self, user: Document, password: str | None, proof: Proof) -> list[str]:
        user_id = user_id_of(user)
        doc = await self._enabled(user)
        await self._password(user, password)
        await self._check(user_id, doc, proof)
        codes = backup_codes.generate()
        if not await self._repo.replace_codes(user_id, codes.salt, codes.hashes):
            raise not_enabled()  # disabled concurrently
        await self._audit.record("2fa_backup_codes_regenerated", user_id=user_id)
        return codes.plain

    # Login ----------------------------------------------------------------------------------

    async def begin_login(self, user: Document, epoch: int, *, in_body: bool, login_email: str) -> str | None:
        """A temp token when the account has a second factor; None when it has none."""
        if await self.active(user) is None:
            return None
        return await self.temp_tokens.issue(user_id_of(user), epoch, in_body=in_body, login_email=login_email)

    def read_temp(self, token: str) -> TempClaims:
        try:
            return self.temp_tokens.read(token)
        except InvalidTempToken:
            raise invalid_temp_token() from None

    async def finish_login(self, claims: TempClaims, proof: Proof) -> Document:
        """The user, once the temp token has a live attempt left and the proof holds."""
        user = await self._accounts.find_by_id(claims.user_id)
        if user is None:
            raise invalid_temp_token()
        doc = await self._enabled(user)
        try:
            await self.temp_tokens.attempt(claims)
        except InvalidTempToken:
            raise invalid_temp_token() from None
        await self._check(claims.user_id, doc, proof)
        try:
            await self.temp_tokens.consume(claims)
        except InvalidTempToken:
            raise invalid_temp_token() from None
        return user

    # Operations -----------------------------------------------------------------------------

    async def reencrypt(self) -> tuple[int, int]:
        """(re-sealed, unreadable): every secret moved to the current key."""
        moved = failed = 0
        async for doc in self._repo.sealed():
            user_id = str(doc["_id"])
            found = doc.get("pending")
            pending: Document = found if isinstance(found, dict) else {}
            for field, stored in (("secret", doc.get("secret")), ("pending.secret", pending.get("secret"))):
                if not isinstance(stored, str) or not stored or self.sealer.is_current(stored):
                    continue
                try:
                    plain = self.sealer.open(user_id, stored)
                except UnreadableSecret:
                    failed += 1
                    continue
                if await self._repo.reseal(user_id, field, stored, self.sealer.seal(user_id, plain)):
                    moved += 1
        return moved, failed
