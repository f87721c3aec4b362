"""Every configuration value of the auth service: defaults, durations, booleans and other scalars.

Settings are built in-process from explicit layers (`Env([...])`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import (
    parse_duration_ms,
)
from tests.auth.config_helpers import (
    BOOLEAN_FIELDS,
    BOOLEANS,
    DURATIONS,
    load,
    refused,
    secrets_env,
)

# Defaults --------------------------------------------------------------------------


def test_defaults_match_the_configuration_table(tmp_path: Path) -> None:
    settings = load(tmp_path, **secrets_env())
    assert settings.env == "production"
    assert (settings.host, settings.port) == ("127.0.0.1", 3080)
    assert settings.allow_email_login is True
    assert settings.allow_registration is False
    assert settings.allow_social_login is False
    assert settings.allow_social_registration is False
    assert settings.session_expiry_ms == 1000 * 60 * 15
    assert settings.refresh_token_expiry_ms == 1000 * 60 * 60 * 24 * 7
    assert settings.session_idle_timeout_ms == 1000 * 60 * 60 * 24
    assert settings.refresh_grace_period_ms == 1000 * 10
    assert settings.max_sessions_per_user == 50
    assert (settings.jwt_issuer, settings.jwt_audience) == ("authgate", "authgate")
    assert settings.min_password_length == 15
    assert settings.password_min_strength == 3
    assert (settings.argon2.memory_kib, settings.argon2.time_cost, settings.argon2.parallelism) == (
        19456,
        2,
        1,
    )
    assert settings.client_ip.hops == 0
    assert settings.trusted_proxies == ()
    assert settings.mongo_timeout_ms == 2000
    assert settings.domain_client is None


# Durations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1000 * 60 * 15", 900_000),
        ("(1000 * 60 * 60 * 24) * 7", 604_800_000),
        ("1000*60*60*24", 86_400_000),
        ("  10000  ", 10_000),
        ("1000 * 10", 10_000),
        ("1000 / 4", 250),
        ("2 * (3 + 4) - 1", 13),
        ("1.5 * 1000", 1500),
        ("((((1000))))", 1000),
        ("-(-5)", 5),
    ],
)
def test_duration_arithmetic(tmp_path: Path, expression: str, expected: int) -> None:
    assert parse_duration_ms("X", expression) == expected
    for name in DURATIONS:
        # Production caps the grace period at a minute; the arithmetic is what is tested here.
        mode = {"AUTHGATE_ENV": "test"} if name == "REFRESH_GRACE_PERIOD" else {}
        settings = load(tmp_path, **secrets_env(**{name: expression}, **mode))
        field = {
            "SESSION_EXPIRY": settings.session_expiry_ms,
            "REFRESH_TOKEN_EXPIRY": settings.refresh_token_expiry_ms,
            "SESSION_IDLE_TIMEOUT": settings.session_idle_timeout_ms,
            "REFRESH_GRACE_PERIOD": settings.refresh_grace_period_ms,
        }[name]
        assert field == expected


@pytest.mark.parametrize(
    "bad",
    [
        "15m",
        "15 minutes",
        "__import__('os')",
        "__import__('os').system('true')",
        "1e400",
        "1e3",
        "9" * 30,
        "1000 ** 3",
        "1000 // 3",
        "1000 % 7",
        "1_000",
        "0x10",
        "1 / 0",
        "1000 *",
        "()",
        "(1000",
        "true",
        "[1000]",
        "1000; 5",
        "(" * 250 + "1" + ")" * 250,
        "1" * 300,
        "0",
        "-1000",
        "1000 - 1000",
    ],
)
def test_bad_duration_names_the_variable(tmp_path: Path, bad: str) -> None:
    for name in ("SESSION_EXPIRY", "REFRESH_TOKEN_EXPIRY", "SESSION_IDLE_TIMEOUT", "MONGO_TIMEOUT"):
        refused(tmp_path, name, **secrets_env(**{name: bad}))


def test_grace_period_may_be_zero_but_not_garbage(tmp_path: Path) -> None:
    assert load(tmp_path, **secrets_env(REFRESH_GRACE_PERIOD="0")).refresh_grace_period_ms == 0
    refused(tmp_path, "REFRESH_GRACE_PERIOD", **secrets_env(REFRESH_GRACE_PERIOD="10s"))


@pytest.mark.parametrize("empty", ["", "   ", "\t"])
def test_empty_duration_means_default(tmp_path: Path, empty: str) -> None:
    settings = load(tmp_path, **secrets_env(SESSION_EXPIRY=empty, REFRESH_TOKEN_EXPIRY=empty))
    assert settings.session_expiry_ms == 900_000
    assert settings.refresh_token_expiry_ms == 604_800_000


# Booleans --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("TRUE", True),
        ("True", True),
        ("1", True),
        ("yes", True),
        ("YES", True),
        ("Yes", True),
        (" true ", True),
        ("false", False),
        ("FALSE", False),
        ("False", False),
        ("0", False),
        ("no", False),
        ("NO", False),
        ("nO", False),
    ],
)
def test_booleans(tmp_path: Path, text: str, value: bool) -> None:
    for name, field in BOOLEAN_FIELDS.items():
        settings = load(tmp_path, **secrets_env(**{name: text}))
        assert getattr(settings, field) is value, name


@pytest.mark.parametrize("bad", ["on", "off", "y", "n", "2", "-1", "enabled", "tru", "truee", "null", "1.0"])
def test_bad_boolean_names_the_variable(tmp_path: Path, bad: str) -> None:
    for name in BOOLEANS:
        error = refused(tmp_path, name, **secrets_env(**{name: bad}))
        assert repr(bad) in str(error)


def test_empty_boolean_means_default(tmp_path: Path) -> None:
    settings = load(tmp_path, **secrets_env(ALLOW_EMAIL_LOGIN="", ALLOW_REGISTRATION=""))
    assert settings.allow_email_login is True
    assert settings.allow_registration is False


# Other scalar values ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("MAX_SESSIONS_PER_USER", "0"),
        ("MAX_SESSIONS_PER_USER", "ten"),
        ("MAX_SESSIONS_PER_USER", "5.5"),
        ("MIN_PASSWORD_LENGTH", "0"),
        ("MIN_PASSWORD_LENGTH", "129"),
        ("PASSWORD_MIN_STRENGTH", "5"),
        ("PASSWORD_MIN_STRENGTH", "-1"),
        ("ARGON2_MEMORY_KIB", "19 MiB"),
        ("ARGON2_TIME_COST", "0"),
        ("ARGON2_PARALLELISM", "0"),
        ("AUTH_PORT", "http"),
        ("TRUST_PROXY", "-1"),
        ("TRUST_PROXY", "all"),
        ("TRUSTED_PROXIES", "10.0.0.0/33"),
        ("TRUSTED_PROXIES", "proxy.internal"),
        ("AUTHGATE_ENV", "staging"),
        ("AUTHGATE_ENV", "Production"),
    ],
)
def test_other_bad_values_name_the_variable(tmp_path: Path, name: str, bad: str) -> None:
    refused(tmp_path, name, **secrets_env(**{name: bad}))


def test_explicit_values_are_used(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        **secrets_env(
            AUTH_HOST="0.0.0.0",
            AUTH_PORT="8080",
            MAX_SESSIONS_PER_USER="3",
            MIN_PASSWORD_LENGTH="20",
            PASSWORD_MIN_STRENGTH="4",
            JWT_ISSUER="https://id.example",
            JWT_AUDIENCE="chat",
            DOMAIN_CLIENT="https://chat.example",
            TRUST_PROXY="1",
            TRUSTED_PROXIES="10.0.0.0/8, 192.168.1.1",
        ),
    )
    assert (settings.host, settings.port) == ("0.0.0.0", 8080)
    assert settings.max_sessions_per_user == 3
    assert (settings.min_password_length, settings.password_min_strength) == (20, 4)
    assert (settings.jwt_issuer, settings.jwt_audience) == ("https://id.example", "chat")
    assert settings.domain_client == "https://chat.example"
    assert settings.client_ip.hops == 1
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.0/8", "192.168.1.1/32"]
