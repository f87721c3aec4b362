"""Persistence for auth: one repository per collection behind the protocols in `interfaces`."""

from services.auth.store.client import Store
from services.auth.store.errors import DuplicateValue, StoreFailure, store_errors, text_value
from services.auth.store.interfaces import (
    AuditRepository,
    Document,
    OneTimeTokenRepository,
    OutboxRepository,
    PasskeyRepository,
    RevocationRepository,
    SessionAdded,
    SessionRepository,
    TempTokenRepository,
    TwoFactorRepository,
    UsernameClaimRepository,
    UserRepository,
    UserState,
    UserStateRepository,
    WebAuthnChallengeRepository,
)

__all__ = [
    "AuditRepository",
    "Document",
    "DuplicateValue",
    "OneTimeTokenRepository",
    "OutboxRepository",
    "PasskeyRepository",
    "RevocationRepository",
    "SessionAdded",
    "SessionRepository",
    "Store",
    "StoreFailure",
    "TempTokenRepository",
    "TwoFactorRepository",
    "UserRepository",
    "UserState",
    "UserStateRepository",
    "UsernameClaimRepository",
    "WebAuthnChallengeRepository",
    "store_errors",
    "text_value",
]
