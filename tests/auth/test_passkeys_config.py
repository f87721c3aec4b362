"""`WEBAUTHN_RP_ID`, `WEBAUTHN_RP_NAME`, `WEBAUTHN_ORIGINS`: defaults from DOMAIN_SERVER, checked at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.auth.passkeys.settings import WebAuthnSettings
from tests.auth.config_helpers import load, refused, secrets_env


def test_without_a_relying_party_passkeys_are_off(tmp_path: Path) -> None:
    assert load(tmp_path, **secrets_env()).webauthn == WebAuthnSettings()
    assert not WebAuthnSettings().enabled


def test_defaults_come_from_domain_server_and_app_title(tmp_path: Path) -> None:
    settings = load(tmp_path, **secrets_env(DOMAIN_SERVER="https://Auth.Example.com:8443/", APP_TITLE="Acme"))
    assert settings.webauthn == WebAuthnSettings(
        "auth.example.com", "Acme", ("https://auth.example.com:8443",)
    )
    assert settings.webauthn.enabled


def test_explicit_values_are_used(tmp_path: Path) -> None:
    env = secrets_env(
        DOMAIN_SERVER="https://auth.example.com",
        WEBAUTHN_RP_ID="example.com",
        WEBAUTHN_RP_NAME="Example",
        WEBAUTHN_ORIGINS="https://auth.example.com, https://app.example.com",
    )
    webauthn = load(tmp_path, **env).webauthn
    assert webauthn.rp_id == "example.com" and webauthn.rp_name == "Example"
    assert webauthn.origins == ("https://auth.example.com", "https://app.example.com")


@pytest.mark.parametrize("server", ["http://auth.example.com", "https://127.0.0.1:8443", "http://[::1]:3080"])
def test_a_domain_server_browsers_refuse_leaves_passkeys_off(tmp_path: Path, server: str) -> None:
    """Such a DOMAIN_SERVER started before passkeys existed; it still does, without them."""
    assert not load(tmp_path, **secrets_env(DOMAIN_SERVER=server)).webauthn.enabled


def test_localhost_may_be_plain_http(tmp_path: Path) -> None:
    webauthn = load(tmp_path, **secrets_env(DOMAIN_SERVER="http://localhost:3080")).webauthn
    assert webauthn.rp_id == "localhost" and webauthn.origins == ("http://localhost:3080",)


@pytest.mark.parametrize(
    ("name", "env"),
    [
        (
            "WEBAUTHN_ORIGINS",
            {"DOMAIN_SERVER": "https://auth.example.com", "WEBAUTHN_ORIGINS": "https://evil.test"},
        ),
        ("WEBAUTHN_ORIGINS", {"WEBAUTHN_RP_ID": "example.com", "WEBAUTHN_ORIGINS": "http://example.com"}),
        ("WEBAUTHN_RP_ID", {"WEBAUTHN_RP_ID": "10.0.0.1", "WEBAUTHN_ORIGINS": "https://10.0.0.1"}),
        ("WEBAUTHN_RP_ID", {"WEBAUTHN_ORIGINS": "https://example.com"}),  # no RP ID to derive
        (
            "WEBAUTHN_ORIGINS",
            {"WEBAUTHN_RP_ID": "example.com", "WEBAUTHN_ORIGINS": "https://example.com/path"},
        ),
        ("WEBAUTHN_ORIGINS", {"WEBAUTHN_RP_ID": "example.com"}),  # no origin to derive
        ("WEBAUTHN_RP_ID", {"WEBAUTHN_RP_ID": "exa mple.com", "WEBAUTHN_ORIGINS": "https://example.com"}),
        ("WEBAUTHN_ORIGINS", {"WEBAUTHN_RP_ID": "example.com", "WEBAUTHN_ORIGINS": "https://notexample.com"}),
    ],
)
def test_bad_values_name_the_variable(tmp_path: Path, name: str, env: dict[str, str]) -> None:
    refused(tmp_path, name, **secrets_env(**env))
