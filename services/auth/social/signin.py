"""Which local user a verified OpenID identity is, and what it may do: the rules, no HTTP.

Links are keyed on (issuer, subject), stored in LibreChat's fields (`openidId`, `openidIssuer`,
`provider`). An unknown identity whose address belongs to a local account is linked only when
`SOCIAL_AUTO_LINK_VERIFIED=true`, the local address was proven by a verification mail and the
provider asserts `email_verified: true`; otherwise the sign-in is refused with `link_required`
(the account page links while signed in with the password). A first sign-in creates a user
only with `ALLOW_SOCIAL_REGISTRATION=true` and an address in `REGISTRATION_ALLOWED_DOMAINS`.

Roles (`OPENID_ADMIN_ROLE`): the claim grants ADMIN and records `roleSource: openid`; an admin
granted that way who signs in without the claim is demoted and loses every other session. An
ADMIN set by an operator (`authgate set-role`, `roleSource: operator`, or no source) is never
changed by a claim: each sign-in where the claim disagrees is an audit event and a warning.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from services.auth.accounts import Accounts, EmailTaken, check_email_syntax, normalize_email, user_id_of
from services.auth.audit import AuditTrail
from services.auth.sessions import SessionService
from services.auth.social.claims import Profile, has_role, profile_of
from services.auth.social.flow import MODE_LINK, Flow
from services.auth.social.oidc import ProviderRefused, SignedInIdentity
from services.auth.social.settings import OpenIdSettings
from services.auth.store import Document
from shared.errors import DomainError, ErrorCode

log = structlog.get_logger("authgate.social")

PROVIDER_FIELDS = (
    "openidId",
    "googleId",
    "githubId",
    "discordId",
    "facebookId",
    "appleId",
    "samlId",
    "ldapId",
)


@dataclass(frozen=True)
class Rules:
    allow_registration: bool
    auto_link_verified: bool
    allowed_domains: tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    user: Document
    created: bool = False
    linked: bool = False
    demoted: bool = False


def domain_allowed(email: str, allowed: tuple[str, ...]) -> bool:
    """REGISTRATION_ALLOWED_DOMAINS: empty allows every domain; otherwise an exact domain match."""
    if not allowed:
        return True
    return email.rpartition("@")[2].lower() in allowed


def sign_in_methods(user: Document, passkeys: int = 0) -> int:
    """A password (local accounts), every linked provider, and the user's passkeys."""
    has_password = isinstance(user.get("password"), str) and bool(user.get("password"))
    return int(has_password) + sum(1 for field in PROVIDER_FIELDS if user.get(field)) + passkeys


def _refused(code: ErrorCode, message: str) -> DomainError:
    return DomainError(code, message)


class OpenIdSignIn:
    def __init__(
        self,
        settings: OpenIdSettings,
        rules: Rules,
        accounts: Accounts,
        sessions: SessionService,
        audit: AuditTrail,
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.accounts = accounts
        self.sessions = sessions
        self.audit = audit

    async def resolve(self, identity: SignedInIdentity, flow: Flow, ip: str) -> Outcome:
        if flow.mode == MODE_LINK:
            return await self._link_to(identity, flow.link_user_id, ip)
        linked = await self._linked(identity)
        required = self.settings.required_role
        if required is not None and not has_role(identity, required):
            if linked is not None:  # losing the required role ends every session of the user
                await self.sessions.revoke(user_id=user_id_of(linked), reason="role_lost", actor="openid")
            await self.audit.record(
                "social_login_refused",
                user_id=user_id_of(linked) if linked else None,
                ip=ip,
                outcome="role_required",
                provider=self.settings.name,
            )
            raise _refused(
                ErrorCode.ROLE_REQUIRED, "Your account at the identity provider lacks the required role."
            )
        if linked is not None:
            demoted = await self._sync_admin(linked, identity, ip)
            return Outcome(linked, demoted=demoted)
        profile = profile_of(identity, self.settings)
        return await self._first_sign_in(identity, profile, ip)

    async def _first_sign_in(self, identity: SignedInIdentity, profile: Profile, ip: str) -> Outcome:
        if not profile.email:
            raise ProviderRefused("no_email")
        try:
            email = check_email_syntax(profile.email)
        except DomainError:
            raise ProviderRefused("invalid_email") from None
        link = self._link_fields(identity)
        existing = await self.accounts.find_by_email(email)
        if existing is not None:
            if (
                self.rules.auto_link_verified
                and existing.get("emailVerifiedBy") == "mail"
                and existing.get("emailVerified") is True
                and profile.email_verified
                and await self.accounts.link(existing, self.settings.link_field, link)
            ):
                await self.audit.record(
                    "social_link",
                    user_id=user_id_of(existing),
                    ip=ip,
                    provider=self.settings.name,
                    how="auto",
                )
                existing.update(link)
                demoted = await self._sync_admin(existing, identity, ip)
                return Outcome(existing, linked=True, demoted=demoted)
            await self.audit.record(
                "social_login_refused",
                user_id=user_id_of(existing),
                ip=ip,
                outcome="link_required",
                provider=self.settings.name,
            )
            raise _refused(
                ErrorCode.LINK_REQUIRED,
                "An account with this email exists. Sign in with your password, then link this "
                "provider from your account page.",
            )
        if not self.rules.allow_registration:
            await self.audit.record(
                "social_login_refused", ip=ip, outcome="registration_disabled", provider=self.settings.name
            )
            raise _refused(ErrorCode.SOCIAL_REGISTRATION_DISABLED, "Sign-up through a provider is disabled.")
        if not domain_allowed(email, self.rules.allowed_domains):
            await self.audit.record(
                "social_login_refused", ip=ip, outcome="email_domain", provider=self.settings.name
            )
            raise _refused(
                ErrorCode.EMAIL_DOMAIN_NOT_ALLOWED, "Sign-up from this email domain is not allowed."
            )
        try:
            user = await self.accounts.create_from_provider(
                email=normalize_email(email),
                name=profile.name,
                username=profile.username,
                verified=profile.email_verified,
                link=link,
                provider=self.settings.name,
            )
        except EmailTaken:
            raise _refused(
                ErrorCode.LINK_REQUIRED, "An account with this email exists. Sign in and link it."
            ) from None
        await self.audit.record(
            "social_register", user_id=user_id_of(user), ip=ip, provider=self.settings.name
        )
        await self._sync_admin(user, identity, ip)
        return Outcome(user, created=True)

    async def _link_to(self, identity: SignedInIdentity, user_id: str, ip: str) -> Outcome:
        user = await self.accounts.find_by_id(user_id) if user_id else None
        if user is None:
            raise ProviderRefused("link_user_gone")
        holder = await self._linked(identity)
        if holder is not None and user_id_of(holder) == user_id:
            return Outcome(user, linked=True)
        link = self._link_fields(identity)
        if holder is not None or not await self.accounts.link(user, self.settings.link_field, link):
            await self.audit.record(
                "social_link_refused", user_id=user_id, ip=ip, provider=self.settings.name
            )
            raise _refused(
                ErrorCode.IDENTITY_IN_USE,
                "This provider account is linked to another account, or yours to another one: unlink first.",
            )
        await self.audit.record(
            "social_link", user_id=user_id, ip=ip, provider=self.settings.name, how="account_page"
        )
        user.update(link)
        return Outcome(user, linked=True)

    def _link_fields(self, identity: SignedInIdentity) -> Document:
        fields: Document = {self.settings.link_field: identity.subject}
        if self.settings.issuer_field:
            fields[self.settings.issuer_field] = identity.issuer
        return fields

    async def _linked(self, identity: SignedInIdentity) -> Document | None:
        """The user linked to (issuer, subject); a preset has one issuer, so its field is enough."""
        issuer = identity.issuer if self.settings.issuer_field else None
        return await self.accounts.find_by_link(self.settings.link_field, identity.subject, issuer)

    async def unlink(self, user: Document, ip: str, passkeys: int = 0) -> None:
        if not user.get(self.settings.link_field):
            return
        if sign_in_methods(user, passkeys) <= 1:
            raise _refused(
                ErrorCode.LAST_SIGN_IN_METHOD,
                "This is your only way to sign in: set a password or add a passkey before unlinking it.",
            )
        fields = [self.settings.link_field] + (
            [self.settings.issuer_field] if self.settings.issuer_field else []
        )
        await self.accounts.unlink(user, fields)
        await self.audit.record("social_unlink", user_id=user_id_of(user), ip=ip, provider=self.settings.name)

    async def _sync_admin(self, user: Document, identity: SignedInIdentity, ip: str) -> bool:
        """True when the user lost a provider-granted ADMIN role (their other sessions then end)."""
        rule = self.settings.admin_role
        if rule is None:
            return False
        user_id = user_id_of(user)
        claimed = has_role(identity, rule)
        role, source = user.get("role", "USER"), user.get("roleSource")
        if claimed and role != "ADMIN":
            user.update(await self.accounts.set_role(user, "ADMIN", source="openid"))
            await self.audit.record("role_changed", user_id=user_id, ip=ip, actor="openid", role="ADMIN")
            return False
        if not claimed and role == "ADMIN":
            if source != "openid":
                log.warning(
                    "openid_role_conflict", user_id=user_id, role=role, role_source=source or "unknown"
                )
                await self.audit.record(
                    "openid_role_conflict",
                    user_id=user_id,
                    ip=ip,
                    outcome="kept",
                    role=role,
                    role_source=source or "unknown",
                )
                return False
            user.update(await self.accounts.set_role(user, "USER", source="openid"))
            await self.audit.record("role_changed", user_id=user_id, ip=ip, actor="openid", role="USER")
            await self.sessions.revoke(user_id=user_id, reason="role_lost", actor="openid")
            return True
        return False
