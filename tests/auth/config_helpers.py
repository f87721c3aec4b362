"""What the configuration tests share: layered settings, the published seed secrets, refusals."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from services.auth.settings import AuthSettings, load_settings
from shared.config import (
    PUBLISHED_EXAMPLE_SECRETS,
    ConfigError,
    Env,
)

SEED_SECRET, SEED_REFRESH_SECRET = sorted(PUBLISHED_EXAMPLE_SECRETS)
DURATIONS = ("SESSION_EXPIRY", "REFRESH_TOKEN_EXPIRY", "SESSION_IDLE_TIMEOUT", "REFRESH_GRACE_PERIOD")
BOOLEANS = ("ALLOW_EMAIL_LOGIN", "ALLOW_REGISTRATION", "ALLOW_SOCIAL_LOGIN", "ALLOW_SOCIAL_REGISTRATION")
BOOLEAN_FIELDS = {
    "ALLOW_EMAIL_LOGIN": "allow_email_login",
    "ALLOW_REGISTRATION": "allow_registration",
    "ALLOW_SOCIAL_LOGIN": "allow_social_login",
    "ALLOW_SOCIAL_REGISTRATION": "allow_social_registration",
}


# Required outside development since the moderation wiring; nothing is contacted while parsing.
MODERATION = {"MODERATION_URL": "http://127.0.0.1:1", "MODERATION_API_KEY": secrets.token_urlsafe(32)}


def secrets_env(**extra: str) -> dict[str, str]:
    """The smallest valid production environment."""
    return {
        "JWT_SECRET": secrets.token_hex(32),
        "JWT_REFRESH_SECRET": secrets.token_hex(32),
        "TOTP_ENCRYPTION_KEY": secrets.token_hex(32),
        "MONGO_URI": "mongodb://127.0.0.1:1/authgate_config_test?retryWrites=false",
        **MODERATION,
        **extra,
    }


def load(tmp_path: Path, **variables: str) -> AuthSettings:
    return load_settings(Env([variables]), root=tmp_path)


def refused(tmp_path: Path, name: str, **variables: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, **variables)
    assert info.value.name == name, str(info.value)
    assert str(info.value).startswith(f"{name}:")
    return info.value
