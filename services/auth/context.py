"""The objects a request handler (or a CLI command) needs, built once per process.

Kept apart from the HTTP app so the CLI builds the same objects without importing it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from services.auth.accounts import Accounts
from services.auth.audit import AuditTrail
from services.auth.breach import BreachCheck
from services.auth.devices import DeviceCookies
from services.auth.email_verification import EmailVerification, VerificationSettings
from services.auth.keys import load_key_ring
from services.auth.mail.budget import AccountLimit, MailBudget
from services.auth.mail.outbox import Outbox
from services.auth.mail.sealing import BodySealer
from services.auth.mail.templates import MailLinks, MailTemplates
from services.auth.moderation_client import ModerationClient
from services.auth.one_time_tokens import OneTimeTokens
from services.auth.passkeys.manager import Passkeys
from services.auth.password_change import PasswordChange
from services.auth.password_reset import PasswordReset, ResetSettings
from services.auth.passwords import Hasher, PasswordPolicy
from services.auth.protection import Protection
from services.auth.revocations import RevocationCache
from services.auth.session_cookie import SessionCookieTokens
from services.auth.sessions import SessionPolicy, SessionService
from services.auth.settings import AuthSettings
from services.auth.store import Store
from services.auth.tokens import AccessTokens
from services.auth.two_factor.manager import TwoFactor, TwoFactorSettings
from services.auth.two_factor.notices import TwoFactorNotices
from services.auth.two_factor.secrets import SecretSealer
from services.auth.two_factor.temp_tokens import TempTokens
from shared.moderation.policy import Limit


@dataclass
class AuthContext:
    settings: AuthSettings
    store: Store
    audit: AuditTrail
    accounts: Accounts
    sessions: SessionService
    tokens: AccessTokens
    revocations: RevocationCache
    protection: Protection
    outbox: Outbox
    verification: EmailVerification
    password_reset: PasswordReset
    password_change: PasswordChange
    two_factor: TwoFactor
    session_cookies: SessionCookieTokens
    passkeys: Passkeys


def build_context(settings: AuthSettings) -> AuthContext:
    ring = load_key_ring(
        settings.jwt_algorithm,
        settings.jwt_secret,
        settings.jwt_keys_dir,
        retired_window_s=settings.session_expiry_ms / 1000 + settings.jwks_max_age_s,
    )
    store = Store(
        settings.mongo_uri, settings.mongo_timeout_ms, settings.mongo_db, settings.mongo_write_concern
    )
    audit = AuditTrail(store.audit)
    hasher = Hasher(settings.argon2, settings.hash_threads, settings.hash_queue)
    breach = BreachCheck(settings.password_breach_check_url) if settings.password_breach_check_url else None
    policy = PasswordPolicy(settings.min_password_length, settings.password_min_strength, breach)
    session_policy = SessionPolicy(
        absolute_ms=settings.refresh_token_expiry_ms,
        idle_ms=settings.session_idle_timeout_ms,
        grace_ms=settings.refresh_grace_period_ms,
        max_per_user=settings.max_sessions_per_user,
        access_lifetime_ms=settings.session_expiry_ms,
    )
    sessions = SessionService(
        store.sessions,
        store.user_state,
        store.revocations,
        audit,
        settings.jwt_refresh_secret,
        session_policy,
    )
    revocations = RevocationCache(
        store.revocations,
        poll_interval_s=settings.verify_max_staleness_ms / 1000 / 4,
        stale_grace_s=settings.verify_stale_grace_ms / 1000,
        retain_s=(settings.session_expiry_ms + 120_000) / 1000,  # as long as a token it refuses lives
    )
    sessions.revocation_listeners.append(revocations.add_many)
    sessions.epoch_listeners.append(revocations.add_epoch)
    devices = DeviceCookies(settings.jwt_refresh_secret, settings.refresh_token_expiry_ms, store.user_state)
    protection = Protection(ModerationClient(settings.moderation), devices, settings.jwt_refresh_secret)
    accounts = Accounts(store.users, store.user_state, store.usernames, hasher, policy, audit)
    outbox = Outbox(store.outbox, BodySealer(settings.jwt_refresh_secret), settings.mail)
    tokens = OneTimeTokens(store.tokens)
    budget = MailBudget(store.outbox, tokens)
    limits = settings.moderation.limits
    templates = MailTemplates(settings.mail.templates_dir)
    links = MailLinks(settings.domain_client, settings.domain_server)
    verification = EmailVerification(
        accounts,
        tokens,
        outbox,
        budget,
        templates,
        audit,
        VerificationSettings(
            settings.app_title,
            links,
            dt.timedelta(milliseconds=settings.email_verification_expiry_ms),
            _per_account(limits.verify_email),
        ),
    )
    password_reset = PasswordReset(
        accounts,
        tokens,
        outbox,
        budget,
        templates,
        sessions,
        devices,
        audit,
        ResetSettings(
            settings.app_title,
            links,
            dt.timedelta(milliseconds=settings.password_reset_expiry_ms),
            _per_account(limits.reset_password),
        ),
    )
    # Security notices: 2FA turned on or off, a passkey added (when mail is configured).
    notices = TwoFactorNotices(outbox, templates, settings.app_title)
    two_factor = TwoFactor(
        store.two_factor,
        store.users,
        accounts,
        SecretSealer(settings.totp_encryption_key, settings.totp_encryption_keys_old),
        TempTokens(store.temp_tokens, settings.jwt_refresh_secret, settings.jwt_issuer),
        audit,
        TwoFactorSettings(settings.app_title, settings.creds_key),
        notices,
    )
    return AuthContext(
        settings=settings,
        store=store,
        audit=audit,
        accounts=accounts,
        sessions=sessions,
        tokens=AccessTokens(ring, settings.jwt_issuer, settings.jwt_audience, settings.session_expiry_ms),
        revocations=revocations,
        protection=protection,
        outbox=outbox,
        verification=verification,
        password_reset=password_reset,
        password_change=PasswordChange(accounts, protection, sessions, audit, password_reset),
        two_factor=two_factor,
        session_cookies=SessionCookieTokens(
            settings.jwt_secret, settings.jwt_issuer, settings.auth_cookie_refresh_ms // 1000
        ),
        passkeys=Passkeys(
            store.passkeys, store.webauthn_challenges, audit, settings.webauthn, accounts, notices
        ),
    )


def _per_account(limit: Limit) -> AccountLimit:
    """The moderation limit of a mail request, applied silently to the account it names."""
    return AccountLimit(limit.max, dt.timedelta(milliseconds=limit.window_ms))
