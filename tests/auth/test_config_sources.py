"""Where configuration comes from and what stops startup: layers, secrets, proxies, the real process.

In-process tests build settings from explicit layers (`Env.load(root=tmp_path, environ=...)`);
the subprocess tests run `python -m services.auth` and check that a bad value stops startup
with one line.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from harness import Server, run_to_exit
from services.auth.settings import load_settings
from shared.config import (
    GENERATED_SECRETS_FILE,
    PUBLISHED_EXAMPLE_SECRETS,
    ConfigError,
    Env,
)
from tests.auth.config_helpers import (
    MODERATION,
    SEED_REFRESH_SECRET,
    SEED_SECRET,
    load,
    refused,
    secrets_env,
)

# Layers ----------------------------------------------------------------------------


def write_layers(root: Path, name: str) -> None:
    (root / "data").mkdir(exist_ok=True)
    (root / GENERATED_SECRETS_FILE).write_text(f"{name}=from-secrets-file\n")
    (root / ".env").write_text(f"{name}=from-dotenv\n")
    (root / ".env.development").write_text(f"{name}=from-dotenv-development\n")


def test_precedence_in_development(tmp_path: Path) -> None:
    write_layers(tmp_path, "JWT_ISSUER")
    dev = {"AUTHGATE_ENV": "development"}
    assert Env.load(tmp_path, {**dev, "JWT_ISSUER": "from-process"}).raw("JWT_ISSUER") == "from-process"
    assert Env.load(tmp_path, dev).raw("JWT_ISSUER") == "from-dotenv-development"
    (tmp_path / ".env.development").unlink()
    assert Env.load(tmp_path, dev).raw("JWT_ISSUER") == "from-dotenv"
    (tmp_path / ".env").unlink()
    assert Env.load(tmp_path, dev).raw("JWT_ISSUER") == "from-secrets-file"
    (tmp_path / GENERATED_SECRETS_FILE).unlink()
    assert Env.load(tmp_path, dev).raw("JWT_ISSUER") is None


@pytest.mark.parametrize("mode", ["production", "test", ""])
def test_dotenv_development_is_read_only_in_development(tmp_path: Path, mode: str) -> None:
    write_layers(tmp_path, "JWT_ISSUER")
    environ = {"AUTHGATE_ENV": mode} if mode else {}
    assert Env.load(tmp_path, environ).raw("JWT_ISSUER") == "from-dotenv"
    assert Env.load(tmp_path, {**environ, "JWT_ISSUER": "p"}).raw("JWT_ISSUER") == "p"


def test_empty_assignment_is_unset_in_every_layer(tmp_path: Path) -> None:
    write_layers(tmp_path, "JWT_ISSUER")
    (tmp_path / ".env.development").write_text("JWT_ISSUER=\n")
    (tmp_path / ".env").write_text("JWT_ISSUER=   \n")
    env = Env.load(tmp_path, {"AUTHGATE_ENV": "development", "JWT_ISSUER": ""})
    assert env.raw("JWT_ISSUER") == "from-secrets-file"


def test_layers_feed_the_settings(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    jwt, refresh = secrets.token_hex(32), secrets.token_hex(32)
    totp = secrets.token_hex(32)
    generated = f"JWT_SECRET={jwt}\nJWT_REFRESH_SECRET={refresh}\nTOTP_ENCRYPTION_KEY={totp}\n"
    (tmp_path / GENERATED_SECRETS_FILE).write_text(generated)
    (tmp_path / ".env").write_text(
        "ALLOW_REGISTRATION=yes\nSESSION_EXPIRY=1000 * 60 * 5\nMONGO_URI=mongodb://db.internal/x\n"
        + "".join(f"{name}={value}\n" for name, value in MODERATION.items())
    )
    (tmp_path / ".env.development").write_text("ALLOW_REGISTRATION=no\n")
    settings = load_settings(Env.load(tmp_path, {"SESSION_EXPIRY": ""}), root=tmp_path)
    assert (settings.jwt_secret, settings.jwt_refresh_secret) == (jwt, refresh)
    assert settings.allow_registration is True  # .env.development ignored in production
    assert settings.session_expiry_ms == 300_000  # empty process value does not hide .env
    assert settings.mongo_uri == "mongodb://db.internal/x"


# Secrets ---------------------------------------------------------------------------


def test_secrets_from_files(tmp_path: Path) -> None:
    jwt, refresh = secrets.token_hex(32), secrets.token_hex(32)
    (tmp_path / "jwt").write_text(jwt + "\n")
    (tmp_path / "refresh").write_text(f"  {refresh}\n\n")
    (tmp_path / "mongo").write_text("mongodb://db.internal:27017/auth\n")
    totp = secrets.token_hex(32)
    (tmp_path / "totp").write_text(totp + "\n")
    settings = load(
        tmp_path,
        TOTP_ENCRYPTION_KEY_FILE=str(tmp_path / "totp"),
        JWT_SECRET_FILE=str(tmp_path / "jwt"),
        JWT_REFRESH_SECRET_FILE=str(tmp_path / "refresh"),
        MONGO_URI_FILE=str(tmp_path / "mongo"),
        **MODERATION,
    )
    assert settings.jwt_secret == jwt
    assert settings.jwt_refresh_secret == refresh
    assert settings.mongo_uri == "mongodb://db.internal:27017/auth"
    assert settings.totp_encryption_key == totp


def test_secret_file_problems_are_refused(tmp_path: Path) -> None:
    (tmp_path / "jwt").write_text(secrets.token_hex(32))
    base = secrets_env()
    # Both the value and the file: ambiguous.
    refused(tmp_path, "JWT_SECRET", **base, JWT_SECRET_FILE=str(tmp_path / "jwt"))
    # A file that cannot be read names the _FILE variable.
    del base["JWT_SECRET"]
    refused(tmp_path, "JWT_SECRET_FILE", **base, JWT_SECRET_FILE=str(tmp_path / "missing"))
    # An empty file is a missing secret.
    (tmp_path / "empty").write_text("\n")
    refused(tmp_path, "JWT_SECRET", **base, JWT_SECRET_FILE=str(tmp_path / "empty"))
    # A short secret from a file is as short as one from the environment.
    (tmp_path / "short").write_text("x" * 31)
    refused(tmp_path, "JWT_SECRET", **base, JWT_SECRET_FILE=str(tmp_path / "short"))


@pytest.mark.parametrize("mode", ["production", "test"])
@pytest.mark.parametrize("name", ["JWT_SECRET", "JWT_REFRESH_SECRET", "TOTP_ENCRYPTION_KEY"])
def test_missing_secret_refused_outside_development(tmp_path: Path, mode: str, name: str) -> None:
    env = secrets_env(AUTHGATE_ENV=mode)
    del env[name]
    refused(tmp_path, name, **env)
    refused(tmp_path, name, **env, **{name: "   "})
    assert not (tmp_path / GENERATED_SECRETS_FILE).exists()


@pytest.mark.parametrize("mode", ["production", "test"])
@pytest.mark.parametrize("name", ["JWT_SECRET", "JWT_REFRESH_SECRET", "TOTP_ENCRYPTION_KEY"])
def test_short_secret_refused_outside_development(tmp_path: Path, mode: str, name: str) -> None:
    refused(tmp_path, name, **secrets_env(AUTHGATE_ENV=mode, **{name: "s" * 31}))
    # 31 bytes even though it is fewer characters: the rule counts bytes.
    refused(tmp_path, name, **secrets_env(AUTHGATE_ENV=mode, **{name: "é" * 15 + "x"}))
    accepted = "0123456789abcdef" * 2  # 32 bytes, 16 distinct characters
    settings = load(tmp_path, **secrets_env(AUTHGATE_ENV=mode, **{name: accepted}))
    assert getattr(settings, name.lower()) == accepted


@pytest.mark.parametrize("mode", ["production", "test"])
@pytest.mark.parametrize("name", ["JWT_SECRET", "JWT_REFRESH_SECRET", "TOTP_ENCRYPTION_KEY"])
def test_placeholder_secret_refused_outside_development(tmp_path: Path, mode: str, name: str) -> None:
    """Long enough but plainly not random (checklist item 28)."""
    refused(tmp_path, name, **secrets_env(AUTHGATE_ENV=mode, **{name: "s" * 64}))
    refused(tmp_path, name, **secrets_env(AUTHGATE_ENV=mode, **{name: "abab" * 16}))


def test_development_generates_missing_secrets_once(tmp_path: Path) -> None:
    env = {"AUTHGATE_ENV": "development", "MONGO_URI": "mongodb://127.0.0.1:1/x"}
    first = load_settings(Env.load(tmp_path, env), root=tmp_path)
    path = tmp_path / GENERATED_SECRETS_FILE
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
    assert len(bytes.fromhex(first.jwt_secret)) == 32
    assert len(bytes.fromhex(first.jwt_refresh_secret)) == 32
    assert first.jwt_secret != first.jwt_refresh_secret
    second = load_settings(Env.load(tmp_path, env), root=tmp_path)
    assert (second.jwt_secret, second.jwt_refresh_secret) == (first.jwt_secret, first.jwt_refresh_secret)


@pytest.mark.parametrize("mode", ["production", "test", "development"])
def test_equal_secrets_refused(tmp_path: Path, mode: str) -> None:
    same = secrets.token_hex(32)
    refused(
        tmp_path,
        "JWT_REFRESH_SECRET",
        **secrets_env(AUTHGATE_ENV=mode, JWT_SECRET=same, JWT_REFRESH_SECRET=same),
    )


@pytest.mark.parametrize("mode", ["production", "test", "development"])
@pytest.mark.parametrize("name", ["JWT_SECRET", "JWT_REFRESH_SECRET", "TOTP_ENCRYPTION_KEY"])
@pytest.mark.parametrize("published", [SEED_SECRET, SEED_REFRESH_SECRET])
def test_published_seed_secrets_refused_in_every_mode(
    tmp_path: Path, mode: str, name: str, published: str
) -> None:
    for spelling in (published, published.upper(), f" {published} "):
        error = refused(tmp_path, name, **secrets_env(AUTHGATE_ENV=mode, **{name: spelling}))
        assert published not in str(error)  # the message does not repeat the secret
    (tmp_path / "secret").write_text(published + "\n")
    env = secrets_env(AUTHGATE_ENV=mode)
    del env[name]
    refused(tmp_path, name, **env, **{f"{name}_FILE": str(tmp_path / "secret")})


def test_published_secret_in_generated_file_refused_in_development(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / GENERATED_SECRETS_FILE).write_text(f"JWT_SECRET={SEED_SECRET}\n")
    environ = {"AUTHGATE_ENV": "development", "MONGO_URI": "mongodb://127.0.0.1:1/x"}
    with pytest.raises(ConfigError) as info:
        load_settings(Env.load(tmp_path, environ), root=tmp_path)
    assert info.value.name == "JWT_SECRET"


# Proxies ---------------------------------------------------------------------------


def test_trust_proxy_without_trusted_proxies_refused(tmp_path: Path) -> None:
    refused(tmp_path, "TRUST_PROXY", **secrets_env(TRUST_PROXY="1"))
    refused(tmp_path, "TRUST_PROXY", **secrets_env(TRUST_PROXY="2", TRUSTED_PROXIES=" , "))
    assert load(tmp_path, **secrets_env(TRUST_PROXY="0")).client_ip.hops == 0
    assert load(tmp_path, **secrets_env(TRUST_PROXY="1", TRUSTED_PROXIES="10.0.0.1")).client_ip.hops == 1


@pytest.mark.parametrize(
    "everyone",
    ["*", "0.0.0.0/0", "::/0", "10.0.0.0/8, *", "0.0.0.0/0.0.0.0", "0::/0", "0:0:0:0:0:0:0:0/0", "::0/0"],
)
def test_trusting_everyone_refused(tmp_path: Path, everyone: str) -> None:
    refused(tmp_path, "TRUSTED_PROXIES", **secrets_env(TRUST_PROXY="1", TRUSTED_PROXIES=everyone))
    refused(tmp_path, "TRUSTED_PROXIES", **secrets_env(TRUSTED_PROXIES=everyone))


# The real process ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "variables", "drop"),
    [
        ("SESSION_EXPIRY", {"SESSION_EXPIRY": "15m"}, ()),
        ("REFRESH_TOKEN_EXPIRY", {"REFRESH_TOKEN_EXPIRY": "__import__('os')"}, ()),
        ("ALLOW_REGISTRATION", {"ALLOW_REGISTRATION": "maybe"}, ()),
        ("JWT_SECRET", {}, ("JWT_SECRET",)),
        ("JWT_REFRESH_SECRET", {"JWT_REFRESH_SECRET": "too-short"}, ()),
        ("JWT_SECRET", {"AUTHGATE_ENV": "development", "JWT_SECRET": SEED_SECRET}, ()),
        ("TRUST_PROXY", {"TRUST_PROXY": "1"}, ()),
        ("TRUSTED_PROXIES", {"TRUSTED_PROXIES": "*"}, ()),
    ],
)
def test_service_refuses_bad_configuration_with_one_line(
    tmp_path: Path, name: str, variables: dict[str, str], drop: tuple[str, ...]
) -> None:
    env = {"AUTHGATE_ENV": "production", **secrets_env(), **variables}
    for key in drop:
        del env[key]
    result = run_to_exit("services.auth", env, tmp_path)
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert name in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    for value in variables.values():
        if value in PUBLISHED_EXAMPLE_SECRETS:
            assert value not in result.stderr


def test_service_reads_dotenv_from_its_root(auth_service: Callable[..., Server], tmp_path: Path) -> None:
    """A real start: `.env` in the working directory is read below the process environment."""
    root = tmp_path / "root"
    root.mkdir()
    (root / ".env").write_text("ALLOW_EMAIL_LOGIN=false\nMIN_PASSWORD_LENGTH=20\nALLOW_SOCIAL_LOGIN=true\n")
    server = auth_service(cwd=root, ALLOW_SOCIAL_LOGIN="0")
    response = httpx.get(f"{server.url}/api/config", timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["emailLoginEnabled"] is False
    assert body["minPasswordLength"] == 20
    assert body["socialLoginEnabled"] is False  # the process environment wins over .env
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200


def test_development_start_generates_secrets(auth_service: Callable[..., Server], tmp_path: Path) -> None:
    root = tmp_path / "dev"
    root.mkdir()
    server = auth_service(cwd=root, AUTHGATE_ENV="development", JWT_SECRET="", JWT_REFRESH_SECRET="")
    assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
    generated = (root / GENERATED_SECRETS_FILE).read_text()
    assert "JWT_SECRET=" in generated
    assert "JWT_REFRESH_SECRET=" in generated
    assert stat.S_IMODE(os.stat(root / GENERATED_SECRETS_FILE).st_mode) & 0o077 == 0
