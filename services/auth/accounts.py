"""Users: registration, credential checks and the CLI's account operations.

Both registration and login answer the same way, in about the same time,
whether or not the email exists: each path runs exactly one argon2 operation.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from email_validator import EmailNotValidError, validate_email

from services.auth.audit import AuditTrail
from services.auth.passwords import Hasher, PasswordPolicy, is_bcrypt, normalize, within_size_cap
from services.auth.store import (
    Document,
    DuplicateValue,
    UsernameClaimRepository,
    UserRepository,
    UserStateRepository,
    text_value,
)
from services.auth.usernames import UsernameClaims
from shared.errors import DomainError, ErrorCode
from shared.timefmt import iso_utc

ROLES = ("USER", "ADMIN")
USERNAME_PATTERN = re.compile(r"[A-Za-z0-9_.\-]{2,64}")
MAX_EMAIL_LENGTH = 254
REGISTER_MESSAGE = "Registration received. If the email can be used, the account is ready to log in."


def _folded(text: str) -> str:
    """NFKC, trimmed, lower-cased, to a fixed point: lowering can leave a string NFKC changes again."""
    value = text
    for _ in range(4):
        folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).strip().lower())
        if folded == value:
            break
        value = folded
    return value


def _validated(email: str) -> tuple[str, str] | None:
    """(canonical, Unicode-domain form) from the validator, or None if it refuses the address."""
    try:
        result = validate_email(
            email, check_deliverability=False, allow_smtputf8=True, globally_deliverable=False
        )
    except (EmailNotValidError, UnicodeError, ValueError):
        return None
    local = _folded(str(result.local_part))
    return f"{local}@{_folded(str(result.ascii_domain))}", f"{local}@{_folded(str(result.domain))}"


def email_forms(email: str) -> list[str]:
    """The canonical form first, then the Unicode-domain spelling a LibreChat database may hold."""
    return list(_email_forms(email))


@functools.lru_cache(maxsize=1024)
def _email_forms(email: str) -> tuple[str, ...]:
    """Cached: a login normalizes its address for the throttle and again for the lookup, and
    the validator's IDNA checks cost more than the rest of that work (bounded, pure)."""
    folded = _folded(email)
    if len(folded) > MAX_EMAIL_LENGTH or "@" not in folded:
        return (folded,)
    validated = _validated(folded)
    if validated is None:
        return (folded,)
    return tuple(dict.fromkeys(validated))


def normalize_email(email: str) -> str:
    """The one canonical form every lookup, throttle and unique index uses.

    The validator's normalized address taken after NFKC (fullwidth letters collapse), with
    the domain in its IDNA ASCII form (so `bücher.de` and `xn--bcher-kva.de` are one domain)
    and the whole address lower-cased as LibreChat stores it: `Root@x` and `root@x` are one
    account and a LibreChat database keeps working. Lenient: input the validator refuses
    still gets a stable folded form, so login never fails with 500 on odd input.
    """
    return email_forms(email)[0]


def check_email_syntax(email: str) -> str:
    """Bounded, linear validation for new addresses; returns the canonical form."""
    canonical = normalize_email(email)
    if len(canonical) > MAX_EMAIL_LENGTH or any(unicodedata.category(ch)[0] == "C" for ch in canonical):
        raise DomainError(ErrorCode.INVALID_INPUT, "email: not a valid email address")
    try:
        validate_email(canonical, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise DomainError(ErrorCode.INVALID_INPUT, f"email: {exc}") from None
    return canonical


def canonical_username(username: str) -> str:
    """NFKC then case-folded: `ROOT`, `Root` and fullwidth forms are one name (LibreChat lower-cases)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", username).strip().casefold())


def user_id_of(doc: Document) -> str:
    return str(doc["_id"])


def _iso(value: Any) -> str | None:
    return iso_utc(value) if isinstance(value, dt.datetime) else None


# LibreChat's `PUBLIC_USER_RESPONSE_FIELDS` beyond the ones always answered: sent when the
# document has them (its client reads them), never anything outside this list.
OPTIONAL_PUBLIC_FIELDS = (
    "plugins",
    "twoFactorEnabled",
    "termsAccepted",
    "personalization",
    "favorites",
    "skillStates",
    "tenantId",
)


def _json_safe(value: Any) -> Any:
    """A stored value as JSON: dates in the one ISO format, store ids (ObjectId) as strings."""
    if isinstance(value, dt.datetime):
        return iso_utc(value)
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def public_user(doc: Document) -> dict[str, Any]:
    """The user as clients see it, LibreChat's allowlist: never the hash, TOTP secret or codes."""
    user_id = user_id_of(doc)
    user: dict[str, Any] = {
        "_id": user_id,
        "id": user_id,
        "email": doc.get("email", ""),
        "username": doc.get("username"),
        "name": doc.get("name"),
        "role": doc.get("role", "USER"),
        "provider": doc.get("provider", "local"),
        "emailVerified": bool(doc.get("emailVerified", False)),
        "avatar": doc.get("avatar"),
        "createdAt": _iso(doc.get("createdAt")),
        "updatedAt": _iso(doc.get("updatedAt")),
        # Always answered, so a client can tell "off" from "unknown"; mirrors auth_two_factor.
        "twoFactorEnabled": doc.get("twoFactorEnabled") is True,
    }
    for name in OPTIONAL_PUBLIC_FIELDS:
        if doc.get(name) is not None:
            user[name] = _json_safe(doc[name])
    return user


@dataclass(frozen=True)
class NewUser:
    email: str
    name: str
    username: str | None
    password: str
    role: str = "USER"
    email_verified: bool = False
    # How the address was proven: mail, operator, provider, or unverified (also for an account
    # created verified only because no mail is configured: nothing proved that address).
    verified_by: str = "unverified"


@dataclass(frozen=True)
class LookAlikes:
    """Several accounts whose email (or username) has one canonical form."""

    kind: str  # "email" or "username"
    canonical: str
    accounts: list[Document]


class UsernameTaken(Exception):
    pass


class EmailTaken(Exception):
    pass


class Accounts:
    def __init__(
        self,
        users: UserRepository,
        user_state: UserStateRepository,
        usernames: UsernameClaimRepository,
        hasher: Hasher,
        policy: PasswordPolicy,
        audit: AuditTrail,
    ) -> None:
        self._users = users
        self._user_state = user_state
        self._names = UsernameClaims(usernames, users, canonical_username)
        self.hasher = hasher
        self.policy = policy
        self._audit = audit

    # Password policy ------------------------------------------------------------------

    async def checked_password(self, password: str, context: list[str]) -> str:
        """Apply the policy to a new password; return its normalized form for hashing."""
        if not within_size_cap(password):
            raise DomainError(
                ErrorCode.PASSWORD_POLICY,
                "Password must be at most 128 characters and 1 KiB.",
                details={"rule": "too_long"},
            )
        normalized = normalize(password)
        violation = await asyncio.to_thread(self.policy.check, normalized, context)
        if violation is not None:
            raise DomainError(ErrorCode.PASSWORD_POLICY, violation.message, details={"rule": violation.rule})
        return normalized

    @staticmethod
    def check_username(username: str | None) -> str | None:
        if username is None or username == "":
            return None
        username = canonical_username(username)
        if not USERNAME_PATTERN.fullmatch(username):
            raise DomainError(
                ErrorCode.INVALID_INPUT,
                "username: 2-64 letters, digits, '.', '_' or '-'",
                details={"field": "username"},
            )
        return username

    # Users ----------------------------------------------------------------------------

    async def find_by_email(self, email: str) -> Document | None:
        return await self._users.find_by_emails(email_forms(email))

    async def find_by_id(self, user_id: str) -> Document | None:
        return await self._users.find_by_id(user_id)

    async def username_exists(self, username: str) -> bool:
        """Case-insensitive: a mixed-case name stored before names were lower-cased still counts."""
        return await self._users.username_exists(canonical_username(text_value(username)))

    async def create(self, new: NewUser) -> Document:
        """Insert a user whose password is already policy-checked and normalized."""
        if new.role not in ROLES:
            raise DomainError(ErrorCode.INVALID_INPUT, f"role must be one of {', '.join(ROLES)}")
        if new.username is not None and await self.username_exists(new.username):
            raise UsernameTaken  # also a mixed-case name the unique index (exact match) would miss
        hashed = await self.hasher.hash(new.password)
        if len(email_forms(new.email)) > 1 and await self.find_by_email(new.email) is not None:
            raise EmailTaken  # stored under its Unicode-domain spelling, which the unique index misses
        now = dt.datetime.now(dt.UTC)
        doc: Document = {
            "name": new.name,
            "username": new.username,
            "email": new.email,
            "emailVerified": new.email_verified,
            "emailVerifiedBy": new.verified_by if new.email_verified else "unverified",
            "password": hashed,
            "avatar": None,
            "provider": "local",
            "role": new.role,
            "createdAt": now,
            "updatedAt": now,
        }
        if new.username is None:
            del doc["username"]
        else:
            doc["_id"] = self._users.new_key()
            if not await self._names.claim(new.username, doc["_id"]):
                raise UsernameTaken  # a concurrent registration claimed it first
        try:
            return await self._users.insert(doc)
        except DuplicateValue as exc:
            if new.username is not None:
                await self._names.release(new.username, doc["_id"])
            raise (UsernameTaken if exc.field == "username" else EmailTaken) from None

    async def create_from_provider(
        self, *, email: str, name: str, username: str | None, verified: bool, link: Document, provider: str
    ) -> Document:
        """A user who signs in only through a provider: no password, the provider's link fields.

        The username is kept when it is valid and free; otherwise the account has none (a
        provider's name never takes over a local one). `EmailTaken` when the address exists.
        """
        try:
            wanted = self.check_username(username)
        except DomainError:
            wanted = None
        if wanted is not None and await self.username_exists(wanted):
            wanted = None
        if await self.find_by_email(email) is not None:
            raise EmailTaken
        now = dt.datetime.now(dt.UTC)
        doc: Document = {
            "name": name,
            "email": email,
            "emailVerified": verified,
            "emailVerifiedBy": "provider" if verified else "unverified",
            "avatar": None,
            "provider": provider,
            "role": "USER",
            "createdAt": now,
            "updatedAt": now,
            **link,
        }
        if wanted is not None:
            doc["_id"] = self._users.new_key()
            if await self._names.claim(wanted, doc["_id"]):
                doc["username"] = wanted
        try:
            return await self._users.insert(doc)
        except DuplicateValue as exc:
            if "username" in doc:
                await self._names.release(wanted or "", doc["_id"])
            raise EmailTaken from exc

    async def find_by_link(self, field: str, subject: str, issuer: str | None = None) -> Document | None:
        return await self._users.find_by_link(field, subject, issuer)

    async def link(self, user: Document, field: str, fields: Document) -> bool:
        return await self._users.link(user["_id"], field, fields)

    async def unlink(self, user: Document, fields: list[str]) -> None:
        await self._users.unlink(user["_id"], fields)

    async def authenticate(self, email: str, password: str) -> Document | None:
        """One argon2 (or bcrypt) operation whether or not the user exists."""
        return await self.check_password(await self.find_for_login(email), password)

    async def find_for_login(self, email: str) -> Document | None:
        """The account a login names, looked up before its password is checked.

        Login reads the user's session epoch between this and `check_password`, so a
        revocation that lands while the hash runs is seen as newer than the check.
        """
        return await self.find_by_email(email) if len(email) <= MAX_EMAIL_LENGTH else None

    async def check_password(self, user: Document | None, password: str) -> Document | None:
        """One argon2 (or bcrypt) operation whether or not `user` exists; the user when it matches."""
        stored = (
            user.get("password") if user is not None and user.get("provider", "local") == "local" else None
        )
        ok = await self.hasher.verify(stored if isinstance(stored, str) else None, password)
        if not ok or user is None:
            return None
        if isinstance(stored, str) and self.hasher.needs_rehash(stored):
            await self._upgrade_hash(user, stored, password)
        return user

    async def _upgrade_hash(self, user: Document, stored: str, password: str) -> None:
        """bcrypt or outdated argon2 parameters → argon2id of the normalized password."""
        new_hash = await self.hasher.hash(normalize(password))
        await self._users.set_password(user["_id"], new_hash, expected=stored)
        user["password"] = new_hash
        await self._audit.record(
            "password_rehashed", user_id=user_id_of(user), legacy="bcrypt" if is_bcrypt(stored) else "argon2"
        )

    async def set_password(self, user: Document, normalized_password: str) -> None:
        await self._users.set_password(user["_id"], await self.hasher.hash(normalized_password))

    async def set_role(self, user: Document, role: str, source: str = "operator") -> Document:
        """`source` (`roleSource`): `operator` for `authgate set-role`, `openid` for a provider claim."""
        if role not in ROLES:
            raise DomainError(ErrorCode.INVALID_INPUT, f"role must be one of {', '.join(ROLES)}")
        updated = await self._users.set_role(user["_id"], role, source)
        if updated is None:
            raise DomainError(ErrorCode.NOT_FOUND, "User not found.")
        return updated

    async def mark_email_verified(self, user: Document, by: str = "mail") -> None:
        await self._users.set_email_verified(user["_id"], by)
        user["emailVerified"] = True
        user["emailVerifiedBy"] = by

    async def delete(self, user: Document) -> None:
        """The user's state document stays as a small tombstone: its epochs must never go back,
        or a login checked before the deletion could create a session that looks current."""
        await self._users.delete(user["_id"])
        await self._user_state.forget_sessions(user_id_of(user))

    async def look_alikes(self) -> list[LookAlikes]:
        """Accounts sharing a canonical email or username: written before canonical forms, or by
        another program. Reported for an operator to resolve; never merged automatically."""
        groups: dict[tuple[str, str], list[Document]] = {}
        async for doc in self._users.identities():
            email, username = doc.get("email"), doc.get("username")
            if isinstance(email, str) and email:
                groups.setdefault(("email", normalize_email(email)), []).append(doc)
            if isinstance(username, str) and username:
                groups.setdefault(("username", canonical_username(username)), []).append(doc)
        return [
            LookAlikes(kind, canonical, docs)
            for (kind, canonical), docs in sorted(groups.items())
            if len(docs) > 1
        ]

    async def list_users(self, limit: int = 10_000) -> list[Document]:
        return await self._users.list(limit)
