"""TOTP_ENCRYPTION_KEY, TOTP_ENCRYPTION_KEYS_OLD, CREDS_KEY and TWO_FACTOR_TEMP_* as startup reads them."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from shared.config import Env
from shared.moderation.policy import Limit, load_policy
from tests.auth.config_helpers import MODERATION, load, refused, secrets_env


def test_the_key_and_the_old_ones_are_read(tmp_path: Path) -> None:
    old = [secrets.token_hex(32), secrets.token_hex(32)]
    settings = load(tmp_path, **secrets_env(TOTP_ENCRYPTION_KEYS_OLD=f" {old[0]} ,{old[1]},"))
    assert settings.totp_encryption_keys_old == tuple(old)
    assert settings.totp_encryption_key not in repr(settings) and old[0] not in repr(settings)


@pytest.mark.parametrize("same_as", ["JWT_SECRET", "JWT_REFRESH_SECRET"])
def test_the_key_must_not_be_a_jwt_secret(tmp_path: Path, same_as: str) -> None:
    env = secrets_env()
    refused(tmp_path, "TOTP_ENCRYPTION_KEY", **{**env, "TOTP_ENCRYPTION_KEY": env[same_as]})


def test_development_generates_a_key_and_keeps_it(tmp_path: Path) -> None:
    dev = {"AUTHGATE_ENV": "development", **MODERATION}
    first = load(tmp_path, **dev).totp_encryption_key
    assert len(first) == 64 and load(tmp_path, **dev).totp_encryption_key == first


@pytest.mark.parametrize("value", ["short", "zz" * 32, "ab" * 31])
def test_creds_key_must_be_librechats_64_hex(tmp_path: Path, value: str) -> None:
    refused(tmp_path, "CREDS_KEY", **secrets_env(CREDS_KEY=value))


def test_creds_key_is_optional(tmp_path: Path) -> None:
    assert load(tmp_path, **secrets_env()).creds_key is None
    key = secrets.token_hex(32)
    assert load(tmp_path, **secrets_env(CREDS_KEY=key)).creds_key == key


def test_the_second_step_limits_default_to_the_logins() -> None:
    policy = load_policy(Env([{"LOGIN_MAX": "9", "LOGIN_WINDOW": "3", "LOGIN_VIOLATION_SCORE": "2"}]))
    assert policy.limits.two_factor_temp == Limit(9, 3 * 60_000)
    assert policy.score("two_factor_temp") == 2
    own = load_policy(
        Env(
            [
                {
                    "TWO_FACTOR_TEMP_MAX": "4",
                    "TWO_FACTOR_TEMP_WINDOW": "1",
                    "TWO_FACTOR_TEMP_VIOLATION_SCORE": "3",
                }
            ]
        )
    )
    assert own.limits.two_factor_temp == Limit(4, 60_000) and own.score("two_factor_temp") == 3
