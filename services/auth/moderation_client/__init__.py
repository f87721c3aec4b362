"""Auth's client for the moderation service, one module per concern.

`transport` (the HTTP hop and key refusals), `breaker`, `bans` (feed + cache), `reports`
(the buffer), `fallback` (the in-process limiter), `fail_modes`, `settings`, `answers`;
`client.ModerationClient` puts them together.
"""

from services.auth.moderation_client.answers import (
    BanInfo,
    Decision,
    ModerationMisconfigured,
    ModerationRejected,
    ModerationUnavailable,
    account_subject,
)
from services.auth.moderation_client.breaker import CircuitBreaker
from services.auth.moderation_client.client import ModerationClient
from services.auth.moderation_client.fail_modes import ModerationUnavailableError
from services.auth.moderation_client.settings import (
    ModerationClientSettings,
    load_moderation_client_settings,
)

__all__ = [
    "BanInfo",
    "CircuitBreaker",
    "Decision",
    "ModerationClient",
    "ModerationClientSettings",
    "ModerationMisconfigured",
    "ModerationRejected",
    "ModerationUnavailable",
    "ModerationUnavailableError",
    "account_subject",
    "load_moderation_client_settings",
]
