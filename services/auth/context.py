"""The objects a request handler needs, built once per process by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from services.auth.accounts import Accounts
from services.auth.audit import AuditTrail
from services.auth.protection import Protection
from services.auth.revocations import RevocationCache
from services.auth.sessions import SessionService
from services.auth.settings import AuthSettings
from services.auth.store import Store
from services.auth.tokens import AccessTokens


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
