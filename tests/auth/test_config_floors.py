"""Production refuses values below the documented security floors; development and test may go lower.

One line naming the variable, like every other startup refusal.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from dotenv import dotenv_values

from harness import ROOT, run_to_exit
from services.auth.moderation_client import load_moderation_client_settings
from services.auth.settings import load_settings
from services.moderation.settings import load_settings as load_moderation_settings
from shared.config import ConfigError, Env
from tests.auth.config_helpers import load, refused, secrets_env

# Entries that cover a public IPv4 /8 (or wider) or a public IPv6 /16 (or wider).
TOO_WIDE = [
    "0.0.0.0/1,128.0.0.0/1",
    "128.0.0.0/1",
    "0.0.0.0/4",
    "8.0.0.0/8",
    "10.0.0.0/8, 64.0.0.0/2",
    "2000::/3",
    "2001::/16",
    "::/1",
    # Halves that are each narrower than the floor but whose union is a public /8 (or all of IPv4).
    "8.0.0.0/9,8.128.0.0/9",
    "8.0.0.0/10,8.64.0.0/10,8.128.0.0/9",
    "2001::/17,2001:8000::/17",
]
# Private, loopback and link-local ranges, and public prefixes narrower than the floor.
ACCEPTED = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "104.16.0.0/12",
    "fc00::/7",
    "fe80::/10",
    "2400:cb00::/32",
    "2001:db8::/17",
]


@pytest.mark.parametrize("name", ["TRUSTED_PROXIES", "BAN_EXEMPT_CIDRS"])
@pytest.mark.parametrize("value", TOO_WIDE)
def test_wide_public_networks_refused_in_production(tmp_path: Path, name: str, value: str) -> None:
    refused(tmp_path, name, **secrets_env(**{name: value}))
    with pytest.raises(ConfigError) as info:
        load_moderation_settings(
            Env([{"MODERATION_API_KEYS": "auth:report:" + "k" * 32, name: value}]), tmp_path
        )
    assert info.value.name == name


@pytest.mark.parametrize("name", ["TRUSTED_PROXIES", "BAN_EXEMPT_CIDRS"])
@pytest.mark.parametrize("value", ACCEPTED)
def test_private_and_narrow_networks_accepted(tmp_path: Path, name: str, value: str) -> None:
    load(tmp_path, **secrets_env(**{name: value}))


def test_trusted_and_exempt_networks_together_may_not_cover_a_public_prefix(tmp_path: Path) -> None:
    """Both lists are exempt from bans: split across the two, a public /8 is still exempt."""
    split = {"TRUSTED_PROXIES": "8.0.0.0/9", "BAN_EXEMPT_CIDRS": "8.128.0.0/9"}
    for name, value in split.items():
        load(tmp_path, **secrets_env(**{name: value}))  # each half alone is narrower than the floor
    with pytest.raises(ConfigError) as info:
        load_moderation_client_settings(Env([secrets_env(**split)]), development=False)
    assert info.value.name == "BAN_EXEMPT_CIDRS"
    with pytest.raises(ConfigError) as info:
        load_moderation_settings(Env([{"MODERATION_API_KEYS": "auth:report:" + "k" * 32, **split}]), tmp_path)
    assert info.value.name == "BAN_EXEMPT_CIDRS"


def test_shipped_production_values_pass_the_floors(tmp_path: Path) -> None:
    """.env.example and the Kubernetes ConfigMap are what operators copy: they must start."""
    example = {k: v for k, v in dotenv_values(ROOT / ".env.example").items() if v}
    configmap = yaml.safe_load((ROOT / "deploy" / "k8s" / "base" / "configmap.yaml").read_text())["data"]
    for shipped in (example, configmap):
        variables = {**secrets_env(), **{k: str(v) for k, v in shipped.items()}, "AUTHGATE_ENV": "production"}
        variables.pop("MONGO_URI_FILE", None)
        settings = load_settings(Env([variables]), root=tmp_path)
        assert settings.env == "production"
        load_moderation_client_settings(Env([variables]), development=False)


@pytest.mark.parametrize("mode", ["development", "test"])
def test_wide_networks_allowed_in_development_and_test(tmp_path: Path, mode: str) -> None:
    settings = load(tmp_path, **secrets_env(AUTHGATE_ENV=mode, TRUSTED_PROXIES="0.0.0.0/1,128.0.0.0/1"))
    assert len(settings.trusted_proxies) == 2


@pytest.mark.parametrize(
    ("memory", "time_cost"),
    [("8", "2"), ("19455", "2"), ("19456", "1"), ("47103", "1"), ("7167", "5"), ("9216", "3"), ("1024", "9")],
)
def test_argon2_below_every_owasp_configuration_refused(tmp_path: Path, memory: str, time_cost: str) -> None:
    error = refused(
        tmp_path, "ARGON2_MEMORY_KIB", **secrets_env(ARGON2_MEMORY_KIB=memory, ARGON2_TIME_COST=time_cost)
    )
    assert "OWASP" in str(error)


@pytest.mark.parametrize(
    ("memory", "time_cost"),
    [("47104", "1"), ("19456", "2"), ("12288", "3"), ("9216", "4"), ("7168", "5"), ("65536", "3")],
)
def test_argon2_at_least_one_owasp_configuration_accepted(
    tmp_path: Path, memory: str, time_cost: str
) -> None:
    settings = load(tmp_path, **secrets_env(ARGON2_MEMORY_KIB=memory, ARGON2_TIME_COST=time_cost))
    assert (settings.argon2.memory_kib, settings.argon2.time_cost) == (int(memory), int(time_cost))


def test_short_minimum_password_length_refused(tmp_path: Path) -> None:
    refused(tmp_path, "MIN_PASSWORD_LENGTH", **secrets_env(MIN_PASSWORD_LENGTH="1"))
    refused(tmp_path, "MIN_PASSWORD_LENGTH", **secrets_env(MIN_PASSWORD_LENGTH="7"))
    assert load(tmp_path, **secrets_env(MIN_PASSWORD_LENGTH="8")).min_password_length == 8


def test_long_refresh_grace_period_refused(tmp_path: Path) -> None:
    refused(tmp_path, "REFRESH_GRACE_PERIOD", **secrets_env(REFRESH_GRACE_PERIOD="1000 * 60 * 60 * 24"))
    refused(tmp_path, "REFRESH_GRACE_PERIOD", **secrets_env(REFRESH_GRACE_PERIOD="60001"))
    assert load(tmp_path, **secrets_env(REFRESH_GRACE_PERIOD="1000 * 60")).refresh_grace_period_ms == 60_000


@pytest.mark.parametrize("mode", ["development", "test"])
def test_floors_do_not_apply_in_development_and_test(tmp_path: Path, mode: str) -> None:
    settings = load_settings(
        Env(
            [
                secrets_env(
                    AUTHGATE_ENV=mode,
                    ARGON2_MEMORY_KIB="8",
                    ARGON2_TIME_COST="1",
                    MIN_PASSWORD_LENGTH="1",
                    REFRESH_GRACE_PERIOD="1000 * 60 * 60 * 24",
                )
            ]
        ),
        root=tmp_path,
    )
    assert settings.argon2.memory_kib == 8


def test_the_service_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    result = run_to_exit(
        "services.auth", secrets_env(TRUSTED_PROXIES="0.0.0.0/1,128.0.0.0/1"), cwd=tmp_path / "run"
    )
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "TRUSTED_PROXIES" in line]
    assert lines, result.stderr
    assert "Traceback" not in result.stderr
