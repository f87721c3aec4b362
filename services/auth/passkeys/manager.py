"""Registering passkeys and signing in with them, on top of the `webauthn` library.

Ceremonies: the options carry a fresh 32-byte challenge, stored server side (`auth_webauthn_
challenges`, keyed by its SHA-256) with its kind, its user for a registration, and an expiry
five minutes out. The answer names its challenge inside clientDataJSON; the challenge is taken
(deleted) before anything else is checked, so it is never accepted twice, whatever the outcome.
Why server side and not a sealed cookie: a cookie cannot be made single use without a server
record of the spent ones anyway, and the JSON endpoints serve front ends on other origins that
do not share the portal's cookies.

Registration asks for a discoverable credential with user verification and excludes the
user's existing credentials. Sign-in is discoverable (empty allowCredentials) with user
verification required: a passkey stands for the password and the second factor. The sign
counter must grow when either side is non-zero; a verified assertion whose counter did not
grow is refused and audited as a possible cloned authenticator.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from services.auth.accounts import Accounts, user_id_of
from services.auth.audit import AuditTrail
from services.auth.passkeys.settings import WebAuthnSettings
from services.auth.store import Document, DuplicateValue, PasskeyRepository, WebAuthnChallengeRepository
from services.auth.two_factor.notices import TwoFactorNotices
from shared.errors import DomainError, ErrorCode

# py_webauthn is imported where a ceremony runs, not with the service: it brings pyOpenSSL and
# ASN.1 tables (about 5 MB of resident memory) that a deployment without passkeys never uses.
if TYPE_CHECKING:
    from webauthn.helpers.structs import AuthenticatorTransport

log = structlog.get_logger("authgate.passkeys")

CHALLENGE_TTL = dt.timedelta(minutes=5)
CEREMONY_TIMEOUT_MS = 120_000  # what the browser is told; the challenge outlives it
MAX_NAME_CHARS = 64
MAX_PASSKEYS_PER_USER = 20


def _malformed() -> tuple[type[BaseException], ...]:
    """What a hostile answer can make the parser raise: all mean "not a valid credential"."""
    from webauthn.helpers.exceptions import WebAuthnException

    return (WebAuthnException, ValueError, TypeError, KeyError, IndexError, OverflowError)


REGISTER = "register"
LOGIN = "login"


def disabled() -> DomainError:
    return DomainError(ErrorCode.PASSKEYS_DISABLED, "Passkeys are not configured on this server.")


def invalid_passkey() -> DomainError:
    return DomainError(ErrorCode.INVALID_PASSKEY, "The passkey could not be verified.")


def invalid_registration(message: str = "The new passkey could not be verified.") -> DomainError:
    return DomainError(ErrorCode.INVALID_PASSKEY_REGISTRATION, message)


def invalid_challenge() -> DomainError:
    return DomainError(
        ErrorCode.PASSKEY_CHALLENGE_INVALID, "The passkey request expired or was already used; start again."
    )


def not_found() -> DomainError:
    return DomainError(ErrorCode.NOT_FOUND, "No such passkey.")


@dataclass(frozen=True)
class PasskeyInfo:
    """What the owner sees of a passkey (never its key or counter)."""

    id: str
    name: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    transports: tuple[str, ...]
    backed_up: bool


@dataclass(frozen=True)
class PasskeyLogin:
    """A verified sign-in: the user it names and the session epoch read before verification."""

    user_id: str
    epoch: int
    passkey_id: str


def info(doc: Document) -> PasskeyInfo:
    last = doc.get("last_used_at")
    return PasskeyInfo(
        id=str(doc["_id"]),
        name=str(doc.get("name", "")),
        created_at=doc["created_at"],
        last_used_at=last if isinstance(last, dt.datetime) else None,
        transports=tuple(str(t) for t in doc.get("transports") or ()),
        backed_up=doc.get("backed_up") is True,
    )


def has_password(user: Document) -> bool:
    """A local account with a stored hash can still sign in with its password."""
    stored = user.get("password")
    return user.get("provider", "local") == "local" and isinstance(stored, str) and bool(stored)


def clean_name(raw: str | None, fallback: str) -> str:
    """A label shown back to its owner: printable, trimmed, at most 64 characters."""
    text = "".join(ch for ch in (raw or "") if ch.isprintable()).strip()[:MAX_NAME_CHARS]
    return text or fallback


def _challenge_key(challenge: bytes) -> str:
    return hashlib.sha256(challenge).hexdigest()


def _challenge_of(credential: dict[str, Any]) -> bytes:
    """The challenge the browser signed, read from clientDataJSON before anything is verified."""
    from webauthn.helpers import base64url_to_bytes

    response = credential.get("response")
    if not isinstance(response, dict) or not isinstance(response.get("clientDataJSON"), str):
        raise ValueError("no clientDataJSON")
    client_data = json.loads(base64url_to_bytes(response["clientDataJSON"]))
    challenge = client_data.get("challenge") if isinstance(client_data, dict) else None
    if not isinstance(challenge, str) or not 0 < len(challenge) <= 128:
        raise ValueError("no challenge")
    return base64url_to_bytes(challenge)


class Passkeys:
    def __init__(
        self,
        repo: PasskeyRepository,
        challenges: WebAuthnChallengeRepository,
        audit: AuditTrail,
        settings: WebAuthnSettings,
        accounts: Accounts,
        notices: TwoFactorNotices | None = None,
    ) -> None:
        self._repo = repo
        self._challenges = challenges
        self._audit = audit
        self.settings = settings
        self._accounts = accounts
        self._notices = notices

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def _rp(self) -> str:
        if not self.settings.enabled or self.settings.rp_id is None:
            raise disabled()
        return self.settings.rp_id

    async def _new_challenge(self, kind: str, user_id: str | None) -> bytes:
        challenge = secrets.token_bytes(32)
        expires = dt.datetime.now(dt.UTC) + CHALLENGE_TTL
        doc: Document = {"_id": _challenge_key(challenge), "kind": kind, "expires_at": expires}
        if user_id is not None:
            doc["user_id"] = user_id
        await self._challenges.insert(doc)
        return challenge

    async def _take_challenge(self, credential: dict[str, Any], kind: str, user_id: str | None) -> bytes:
        """The challenge of this answer, consumed; refused when unknown, spent, expired or foreign."""
        try:
            challenge = _challenge_of(credential)
        except _malformed():
            raise invalid_challenge() from None
        record = await self._challenges.take(_challenge_key(challenge))
        if record is None or record.get("kind") != kind or record.get("user_id") != user_id:
            raise invalid_challenge()
        expires = record.get("expires_at")
        if not isinstance(expires, dt.datetime) or expires.replace(tzinfo=dt.UTC) <= dt.datetime.now(dt.UTC):
            raise invalid_challenge()
        return challenge

    # Registration ---------------------------------------------------------------------------

    async def registration_options(self, user: Document, password: str | None) -> dict[str, Any]:
        """A registration challenge, after the current password when the account has one.

        A passkey signs in without the password and outlives a password change, so a stolen
        access token or session cookie must not be enough to add one. An account without a
        password (provider sign-in only) has nothing more to prove than its session.
        """
        from webauthn import generate_registration_options, options_to_json
        from webauthn.helpers import base64url_to_bytes
        from webauthn.helpers.structs import (
            AuthenticatorSelectionCriteria,
            PublicKeyCredentialDescriptor,
            ResidentKeyRequirement,
            UserVerificationRequirement,
        )

        rp_id = self._rp()
        user_id = user_id_of(user)
        if has_password(user) and (
            not password or await self._accounts.check_password(user, password) is None
        ):
            raise DomainError(ErrorCode.INVALID_CREDENTIALS, "The current password is incorrect.")
        existing = await self._repo.list_for(user_id)
        if len(existing) >= MAX_PASSKEYS_PER_USER:
            raise invalid_registration(f"At most {MAX_PASSKEYS_PER_USER} passkeys per account.")
        email = str(user.get("email") or "")
        options = generate_registration_options(
            rp_id=rp_id,
            rp_name=self.settings.rp_name,
            user_name=email or str(user.get("username") or user_id),
            user_id=user_id.encode(),
            user_display_name=str(user.get("name") or email or user_id),
            challenge=await self._new_challenge(REGISTER, user_id),
            timeout=CEREMONY_TIMEOUT_MS,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=[
                PublicKeyCredentialDescriptor(
                    id=base64url_to_bytes(str(doc["credential_id"])), transports=_transports(doc)
                )
                for doc in existing
            ],
        )
        found: dict[str, Any] = json.loads(options_to_json(options))
        return found

    async def register(
        self, user: Document, credential: dict[str, Any], name: str | None, ip: str | None
    ) -> PasskeyInfo:
        """Verify the attestation ('none' accepted) against this user's challenge and store the key."""
        from webauthn import verify_registration_response
        from webauthn.helpers import bytes_to_base64url, parse_registration_credential_json

        rp_id = self._rp()
        user_id = user_id_of(user)
        challenge = await self._take_challenge(credential, REGISTER, user_id)
        try:
            parsed = parse_registration_credential_json(credential)
            verified = verify_registration_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=rp_id,
                expected_origin=list(self.settings.origins),
                require_user_verification=True,
            )
        except _malformed() as exc:
            await self._audit.record(
                "passkey_register_failed", user_id=user_id, ip=ip, outcome="refused", reason=str(exc)[:200]
            )
            raise invalid_registration() from None
        now = dt.datetime.now(dt.UTC)
        count = await self._repo.count_for(user_id)
        doc: Document = {
            "_id": secrets.token_urlsafe(12),
            "user_id": user_id,
            "credential_id": bytes_to_base64url(verified.credential_id),
            "public_key": verified.credential_public_key,
            "sign_count": verified.sign_count,
            "transports": [t.value for t in parsed.response.transports or []],
            "name": clean_name(name, f"Passkey {count + 1}"),
            "backed_up": verified.credential_backed_up,
            "aaguid": verified.aaguid,
            "created_at": now,
            "last_used_at": None,
        }
        try:
            await self._repo.insert(doc)
        except DuplicateValue:
            raise invalid_registration("This passkey is registered already.") from None
        await self._audit.record("passkey_registered", user_id=user_id, ip=ip, passkey_id=doc["_id"])
        if self._notices is not None:  # the owner hears of a key that signs in without the password
            await self._notices.send(user, "passkey_added")
        return info(doc)

    # Sign-in --------------------------------------------------------------------------------

    async def authentication_options(self) -> dict[str, Any]:
        from webauthn import generate_authentication_options, options_to_json
        from webauthn.helpers.structs import UserVerificationRequirement

        options = generate_authentication_options(
            rp_id=self._rp(),
            challenge=await self._new_challenge(LOGIN, None),
            timeout=CEREMONY_TIMEOUT_MS,
            allow_credentials=[],
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        found: dict[str, Any] = json.loads(options_to_json(options))
        return found

    async def authenticate(
        self, credential: dict[str, Any], ip: str | None, epoch_of: Callable[[str], Awaitable[int]]
    ) -> PasskeyLogin:
        """The user a valid assertion names. `epoch_of` reads the user's session epoch before the
        signature is checked, so a revocation landing meanwhile ends the session about to start."""
        from webauthn import verify_authentication_response
        from webauthn.helpers import bytes_to_base64url, parse_authentication_credential_json

        rp_id = self._rp()
        challenge = await self._take_challenge(credential, LOGIN, None)
        try:
            parsed = parse_authentication_credential_json(credential)
        except _malformed():
            await self._failed(ip, None, "malformed")
            raise invalid_passkey() from None
        doc = await self._repo.by_credential_id(bytes_to_base64url(parsed.raw_id))
        if doc is None:
            await self._failed(ip, None, "unknown_credential")
            raise invalid_passkey()
        user_id = str(doc["user_id"])
        handle = parsed.response.user_handle
        if handle is not None and not secrets.compare_digest(handle, user_id.encode()):
            await self._failed(ip, user_id, "user_handle_mismatch")
            raise invalid_passkey()
        epoch = await epoch_of(user_id)
        stored = int(doc.get("sign_count") or 0)
        try:
            # The counter is compared below, after the signature: only a verified assertion
            # with a stale counter points at a cloned authenticator.
            verified = verify_authentication_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=rp_id,
                expected_origin=list(self.settings.origins),
                credential_public_key=bytes(doc["public_key"]),
                credential_current_sign_count=0,
                require_user_verification=True,
            )
        except _malformed() as exc:
            await self._failed(ip, user_id, "invalid_assertion", detail=str(exc)[:200])
            raise invalid_passkey() from None
        new = verified.new_sign_count
        if (new > 0 or stored > 0) and new <= stored:
            await self._audit.record(
                "passkey_counter_regression",
                user_id=user_id,
                ip=ip,
                outcome="possible_clone",
                passkey_id=str(doc["_id"]),
                stored=stored,
                presented=new,
            )
            log.warning("passkey_possible_clone", user_id=user_id, passkey_id=str(doc["_id"]))
            raise invalid_passkey()
        if not await self._repo.record_use(str(doc["_id"]), stored, new, dt.datetime.now(dt.UTC)):
            await self._failed(ip, user_id, "concurrent_use")  # another assertion moved the counter
            raise invalid_passkey()
        return PasskeyLogin(user_id, epoch, str(doc["_id"]))

    async def _failed(self, ip: str | None, user_id: str | None, reason: str, **details: Any) -> None:
        await self._audit.record(
            "passkey_login_failed", user_id=user_id, ip=ip, outcome="refused", reason=reason, **details
        )

    # Management -----------------------------------------------------------------------------

    async def list(self, user_id: str) -> list[PasskeyInfo]:
        return [info(doc) for doc in await self._repo.list_for(user_id)]

    async def rename(self, user_id: str, passkey_id: str, name: str) -> None:
        label = clean_name(name, "")
        if not label:
            raise DomainError(ErrorCode.INVALID_INPUT, "name: must not be empty")
        if not await self._repo.rename(user_id, passkey_id, label):
            raise not_found()

    async def remove(self, user: Document, passkey_id: str, actor: str, ip: str | None) -> None:
        """Refused (409 `last_sign_in_method`) when it would leave the account no way to sign in.

        Checked before and again after the delete: of two concurrent removals of a password-less
        account's last two passkeys, each finds none left afterwards and puts its own back.
        """
        user_id = user_id_of(user)
        password = has_password(user)
        if not password and await self._repo.count_for(user_id) <= 1:
            if any(doc["_id"] == passkey_id for doc in await self._repo.list_for(user_id)):
                raise _last_method()
            raise not_found()
        removed = await self._repo.delete(user_id, passkey_id)
        if removed is None:
            raise not_found()
        if not password and await self._repo.count_for(user_id) == 0:
            await self._repo.restore(removed)
            raise _last_method()
        await self._audit.record(
            "passkey_removed", user_id=user_id, ip=ip, actor=actor, passkey_id=passkey_id
        )

    async def forget(self, user_id: str) -> int:
        """A deleted account's passkeys go with it (the operator's `delete-user`)."""
        return await self._repo.delete_all(user_id)


def _last_method() -> DomainError:
    return DomainError(
        ErrorCode.LAST_SIGN_IN_METHOD,
        "This passkey is the account's last way to sign in; add another before removing it.",
    )


def _transports(doc: Document) -> list[AuthenticatorTransport]:
    from webauthn.helpers.structs import AuthenticatorTransport

    known = {t.value: t for t in AuthenticatorTransport}
    return [known[t] for t in doc.get("transports") or () if t in known]
