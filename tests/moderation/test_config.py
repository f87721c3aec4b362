"""Startup refuses bad configuration with one line naming the variable, and exit status 2."""

from __future__ import annotations

import pytest

from harness import run_to_exit
from services.moderation.settings import load_settings
from shared.config import ConfigError, Env
from shared.moderation.policy import MINUTE_MS
from tests.moderation.conftest import API_KEYS


def settings_from(**values: str) -> object:
    return load_settings(Env([{"AUTHGATE_ENV": "test", "MODERATION_API_KEYS": API_KEYS, **values}]))


def test_defaults_follow_librechat_names_and_the_issue() -> None:
    settings = load_settings(Env([{"AUTHGATE_ENV": "test", "MODERATION_API_KEYS": API_KEYS}]))
    policy = settings.policy
    assert (settings.host, settings.port, settings.redis_uri) == ("127.0.0.1", 3081, None)
    assert (policy.limits.login.max, policy.limits.login.window_ms) == (7, 5 * MINUTE_MS)
    assert (policy.limits.register.max, policy.limits.register.window_ms) == (5, 60 * MINUTE_MS)
    assert (policy.limits.login_account.max, policy.limits.login_account.window_ms) == (10, 15 * MINUTE_MS)
    assert policy.limits.login_device_max == 20 and policy.limits.concurrent_messages == 2
    assert (
        policy.bans.enabled and policy.bans.interval == 20 and policy.bans.duration_ms == 2 * 60 * MINUTE_MS
    )
    assert policy.bans.escalation_window_ms == policy.bans.max_duration_ms == 7 * 24 * 60 * MINUTE_MS
    assert (
        policy.score("non_browser") == 5 and policy.score("illegal_model") == 5 and policy.score("login") == 1
    )


def test_submission_limits_inherit_the_request_limits_unless_set() -> None:
    inherited = settings_from(RESET_PASSWORD_MAX="5", RESET_PASSWORD_WINDOW="7").policy  # type: ignore[attr-defined]
    assert inherited.limits.reset_password_submission.max == 5
    assert inherited.limits.reset_password_submission.window_ms == 7 * MINUTE_MS
    assert (inherited.limits.verify_email_submission.max, inherited.limits.verify_email.max) == (2, 2)
    own = settings_from(VERIFY_EMAIL_SUBMISSION_MAX="9", VERIFY_EMAIL_SUBMISSION_WINDOW="1").policy  # type: ignore[attr-defined]
    assert own.limits.verify_email_submission.max == 9
    assert own.limits.verify_email_submission.window_ms == MINUTE_MS
    assert own.score("verify_email_submission") == 1


def test_fractional_windows_and_ms_expressions() -> None:
    settings = settings_from(LOGIN_WINDOW="0.05", BAN_DURATION="1000 * 30", BAN_MAX_DURATION="1000 * 60 * 2")
    policy = settings.policy  # type: ignore[attr-defined]
    assert policy.limits.login.window_ms == 3000
    assert policy.bans.duration_ms == 30_000 and policy.bans.max_duration_ms == 120_000


def test_ban_duration_zero_disables_automatic_bans_only() -> None:
    policy = settings_from(BAN_DURATION="0").policy  # type: ignore[attr-defined]
    assert not policy.bans.automatic and policy.bans.enabled


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({"MODERATION_API_KEYS": ""}, "MODERATION_API_KEYS"),
        ({"MODERATION_API_KEYS": "auth:report:short"}, "MODERATION_API_KEYS"),
        ({"MODERATION_API_KEYS": "auth:superuser:" + "x" * 40}, "MODERATION_API_KEYS"),
        ({"MODERATION_REPLICAS_SHARED": "true"}, "MODERATION_REPLICAS_SHARED"),
        ({"REDIS_URI": "localhost:6379"}, "REDIS_URI"),
        ({"LOGIN_WINDOW": "five"}, "LOGIN_WINDOW"),
        ({"LOGIN_WINDOW": "0"}, "LOGIN_WINDOW"),
        ({"LOGIN_MAX": "0"}, "LOGIN_MAX"),
        ({"BAN_DURATION": "2h"}, "BAN_DURATION"),
        ({"BAN_ESCALATION_WINDOW": "0"}, "BAN_ESCALATION_WINDOW"),
        ({"BAN_MAX_DURATION": "1000"}, "BAN_MAX_DURATION"),
        ({"BAN_INTERVAL": "0"}, "BAN_INTERVAL"),
        ({"BAN_VIOLATIONS": "maybe"}, "BAN_VIOLATIONS"),
        ({"NON_BROWSER_VIOLATION_SCORE": "20"}, "NON_BROWSER_VIOLATION_SCORE"),
        ({"LOGIN_VIOLATION_SCORE": "-1"}, "LOGIN_VIOLATION_SCORE"),
        ({"LOGIN_ACCOUNT_MAX": "101"}, "LOGIN_ACCOUNT_MAX"),
        ({"LOGIN_DEVICE_MAX": "5"}, "LOGIN_DEVICE_MAX"),
        ({"BAN_EXEMPT_CIDRS": "0.0.0.0/0"}, "BAN_EXEMPT_CIDRS"),
        ({"TRUSTED_PROXIES": "not-a-network"}, "TRUSTED_PROXIES"),
        ({"MODERATION_REDIS_PREFIX": "a{b}"}, "MODERATION_REDIS_PREFIX"),
    ],
)
def test_bad_values_name_their_variable(values: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from(**values)
    assert info.value.name == variable


def test_development_starts_without_keys() -> None:
    settings = load_settings(Env([{"AUTHGATE_ENV": "development"}]))
    assert settings.keys == () and settings.development


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"AUTHGATE_ENV": "production"}, "MODERATION_API_KEYS"),
        (
            {
                "AUTHGATE_ENV": "production",
                "MODERATION_API_KEYS": API_KEYS,
                "MODERATION_REPLICAS_SHARED": "true",
            },
            "MODERATION_REPLICAS_SHARED",
        ),
    ],
)
def test_the_process_refuses_to_start_with_one_line(env: dict[str, str], variable: str) -> None:
    result = run_to_exit("services.moderation", env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"config error: {variable}: ")
