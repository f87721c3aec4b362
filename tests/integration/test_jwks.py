"""Asymmetric keys: tokens another service verifies with only the published JWKS; rotation; config errors.

Keys are generated here with `cryptography` into a scratch JWT_KEYS_DIR
(`<kid>.<published|active|retired>.pem`). The auth service runs as a real process
for everything that involves a start or a restart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from harness import Server, run_to_exit
from services.auth.app import create_app
from services.auth.settings import load_settings
from shared.config import ConfigError, Env
from tests.integration.support import AuthClient, auth_env, eventually_sync

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}
KTY = {"ES256": "EC", "RS256": "RSA", "EdDSA": "OKP"}
AUDIENCE = ISSUER = "authgate"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def new_key(algorithm: str) -> PrivateKey:
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ed25519.Ed25519PrivateKey.generate()


def write_key(directory: Path, name: str, key: Any, password: bytes | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    path = directory / name
    path.write_bytes(pem)
    return path


def fetch_jwks(api: AuthClient) -> tuple[httpx.Response, dict[str, Any]]:
    response = api.http.get("/.well-known/jwks.json")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return response, body


def kids(body: dict[str, Any]) -> list[str]:
    return [key["kid"] for key in body["keys"]]


def verify_like_another_service(token: str, jwks_body: dict[str, Any], algorithm: str) -> dict[str, Any]:
    """What a resource server does with only the JWKS: pick the key by kid, pin alg, iss and aud."""
    key_set = jwt.PyJWKSet.from_dict(jwks_body)
    kid = jwt.get_unverified_header(token)["kid"]
    key = key_set[kid]
    claims: dict[str, Any] = jwt.decode(
        token, key=key.key, algorithms=[algorithm], issuer=ISSUER, audience=AUDIENCE
    )
    return claims


def assert_public_only(body: dict[str, Any], algorithm: str) -> None:
    assert body["keys"], "the JWKS is empty"
    seen = kids(body)
    assert len(seen) == len(set(seen)), f"duplicate kids: {seen}"
    for key in body["keys"]:
        assert not PRIVATE_MEMBERS & set(key), (
            f"private members in the JWKS: {sorted(PRIVATE_MEMBERS & set(key))}"
        )
        assert key["use"] == "sig"
        assert key["alg"] == algorithm
        assert key["kty"] == KTY[algorithm]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hmac_token(payload: dict[str, Any], secret: bytes, **header: Any) -> str:
    fields = {"alg": "HS256", "typ": "at+jwt", **header}
    signing_input = f"{b64(json.dumps(fields).encode())}.{b64(json.dumps(payload).encode())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def public_encodings(key: PrivateKey) -> dict[str, bytes]:
    public = key.public_key()
    encodings = {
        "pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "openssh": public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
    }
    if isinstance(public, rsa.RSAPublicKey):
        encodings["pkcs1"] = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    return encodings


StartAuth = Callable[[dict[str, str]], Server]


# One algorithm at a time ----------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["ES256", "RS256", "EdDSA"])
def test_tokens_verify_with_only_the_published_jwks(
    algorithm: str, mongo: Server, tmp_path: Path, auth_procs: StartAuth
) -> None:
    keys_dir = tmp_path / "keys"
    private = new_key(algorithm)
    write_key(keys_dir, "main-1.active.pem", private)
    env = auth_env(mongo.port, JWT_ALGORITHM=algorithm, JWT_KEYS_DIR=str(keys_dir), JWKS_MAX_AGE="123")
    api = AuthClient(auth_procs(env).url)
    try:
        body = api.user(f"{algorithm.lower()}@example.com")
        token = body["token"]
        header = jwt.get_unverified_header(token)
        assert header == {"alg": algorithm, "typ": "at+jwt", "kid": "main-1"}

        response, jwks = fetch_jwks(api)
        assert "max-age=123" in response.headers["cache-control"]
        assert_public_only(jwks, algorithm)
        assert kids(jwks) == ["main-1"]
        claims = verify_like_another_service(token, jwks, algorithm)
        assert claims["sub"] == body["user"]["id"]
        assert claims["iss"] == ISSUER and claims["aud"] == AUDIENCE
        # The published key is exactly the private key's public half.
        published = jwt.PyJWKSet.from_dict(jwks)["main-1"].key
        assert (
            published.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            == public_encodings(private)["der"]
        )
        assert api.verify_status(token) == 200

        # Another service pinning a different algorithm refuses the token.
        other = "RS256" if algorithm != "RS256" else "ES256"
        with pytest.raises(jwt.PyJWTError):
            jwt.decode(
                token,
                key=jwt.PyJWKSet.from_dict(jwks)["main-1"].key,
                algorithms=[other],
                issuer=ISSUER,
                audience=AUDIENCE,
            )

        # HS256 is refused once an asymmetric key is active, even MACed with the real secret.
        payload = jwt.decode(token, options={"verify_signature": False})
        secret = env["JWT_SECRET"].encode()
        for extra in ({}, {"kid": "hs256"}, {"kid": "main-1"}):
            assert api.verify_status(hmac_token(payload, secret, **extra)) == 401, extra
        # Key confusion: the public key, in any encoding, used as an HMAC secret.
        encodings = {**public_encodings(private), "jwk": json.dumps(jwks["keys"][0]).encode()}
        for name, encoded in encodings.items():
            for extra in ({}, {"kid": "main-1"}):
                forged = hmac_token(payload, encoded, **extra)
                assert api.verify_status(forged) == 401, (name, extra)
        # alg none with the real kid.
        none = f"{b64(json.dumps({'alg': 'none', 'typ': 'at+jwt', 'kid': 'main-1'}).encode())}."
        none += f"{b64(json.dumps(payload).encode())}."
        assert api.verify_status(none) == 401
    finally:
        api.close()


async def test_hs256_mode_publishes_no_keys(inproc_factory: Any) -> None:
    async with inproc_factory(JWKS_MAX_AGE="60") as app:
        response = await app.new_client().get("/.well-known/jwks.json")
        assert response.status_code == 200
        assert response.json() == {"keys": []}
        assert "max-age=60" in response.headers["cache-control"]
        assert app.ctx.settings.jwt_secret not in response.text


# Rotation through the key states ----------------------------------------------------------------


def test_rotation_through_the_key_states(mongo: Server, tmp_path: Path, auth_procs: StartAuth) -> None:
    algorithm = "ES256"
    keys_dir = tmp_path / "keys"
    k1, k2 = new_key(algorithm), new_key(algorithm)
    env = auth_env(mongo.port, JWT_ALGORITHM=algorithm, JWT_KEYS_DIR=str(keys_dir), JWKS_MAX_AGE="300")
    email = "rotation@example.com"
    clients: list[AuthClient] = []

    def run(directory: Path = keys_dir, **extra: str) -> tuple[Server, AuthClient]:
        server = auth_procs({**env, "JWT_KEYS_DIR": str(directory), **extra})
        client = AuthClient(server.url)
        clients.append(client)
        return server, client

    try:
        # 1. k1 published only: HS256 still signs and verifies; the JWKS already lists k1.
        write_key(keys_dir, "k1.published.pem", k1)
        server, api = run()
        hs_token = api.user(email)["token"]
        assert jwt.get_unverified_header(hs_token)["alg"] == "HS256"
        assert "kid" not in jwt.get_unverified_header(hs_token)
        assert api.verify_status(hs_token) == 200
        _, jwks = fetch_jwks(api)
        assert kids(jwks) == ["k1"]
        assert_public_only(jwks, algorithm)
        server.stop()

        # 2. k1 active: new tokens carry k1; HS256 tokens are refused from now on.
        (keys_dir / "k1.published.pem").rename(keys_dir / "k1.active.pem")
        server, api = run()
        assert api.verify_status(hs_token) == 401
        k1_token = api.login(email)["token"]
        assert jwt.get_unverified_header(k1_token)["kid"] == "k1"
        assert api.verify_status(k1_token) == 200
        _, jwks = fetch_jwks(api)
        verify_like_another_service(k1_token, jwks, algorithm)
        server.stop()

        # 3. k2 published beside the active k1: k1 still signs; both in the JWKS.
        write_key(keys_dir, "k2.published.pem", k2)
        server_a, api_a = run()
        assert jwt.get_unverified_header(api_a.login(email)["token"])["kid"] == "k1"
        _, jwks = fetch_jwks(api_a)
        assert sorted(kids(jwks)) == ["k1", "k2"]
        assert_public_only(jwks, algorithm)
        # A rolling restart: a replica already on the next state (k1 retired, k2 active) signs
        # with k2, and the replica still on state 3 accepts those tokens (k2 is published there).
        next_dir = tmp_path / "keys-next"
        write_key(next_dir, "k1.retired.pem", k1)
        write_key(next_dir, "k2.active.pem", k2)
        server_b, api_b = run(next_dir)
        k2_token = api_b.login(email)["token"]
        assert jwt.get_unverified_header(k2_token)["kid"] == "k2"
        assert api_a.verify_status(k2_token) == 200
        assert api_b.verify_status(k1_token) == 200
        server_a.stop()

        # 4. Every replica on k1 retired, k2 active: old-kid tokens still verify, HS256 stays refused.
        server_c, api_c = run(next_dir)
        new_token = api_c.login(email)["token"]
        assert jwt.get_unverified_header(new_token)["kid"] == "k2"
        for token in (k1_token, k2_token, new_token):
            assert api_c.verify_status(token) == 200
        assert api_c.verify_status(hs_token) == 401
        _, jwks = fetch_jwks(api_c)
        assert sorted(kids(jwks)) == ["k1", "k2"]
        verify_like_another_service(k1_token, jwks, algorithm)
        verify_like_another_service(new_token, jwks, algorithm)
        server_b.stop()
        server_c.stop()

        # 5. A retired key leaves the JWKS (and stops verifying) once its last token can have
        #    expired: SESSION_EXPIRY + JWKS_MAX_AGE after the process saw it retired (3 s here).
        _, api_d = run(next_dir, SESSION_EXPIRY="3000", JWKS_MAX_AGE="0")
        _, jwks = fetch_jwks(api_d)
        assert sorted(kids(jwks)) == ["k1", "k2"]
        eventually_sync(
            lambda: kids(fetch_jwks(api_d)[1]) == ["k2"], "the retired key leaving the JWKS", timeout=3 + 15
        )
        assert api_d.verify_status(k1_token) == 401
        assert api_d.verify_status(api_d.login(email)["token"]) == 200
    finally:
        for client in clients:
            client.close()


# Configuration errors stop startup with one line naming the variable ---------------------------------


def _config_cases(tmp_path: Path, only: str | None = None) -> dict[str, tuple[dict[str, str], str]]:
    es = ec.generate_private_key(ec.SECP256R1())
    cases: dict[str, tuple[dict[str, str], str]] = {}

    def case(name: str, variable: str, files: dict[str, Any] | None = None, **env: str) -> None:
        if only is not None and name != only:
            return
        directory = tmp_path / name
        for file_name, key in (files or {}).items():
            if isinstance(key, bytes):
                directory.mkdir(parents=True, exist_ok=True)
                (directory / file_name).write_bytes(key)
            else:
                write_key(directory, file_name, key)
        if files is not None:
            directory.mkdir(parents=True, exist_ok=True)
            env.setdefault("JWT_KEYS_DIR", str(directory))
        cases[name] = (env, variable)

    case(
        "two-active",
        "JWT_KEYS_DIR",
        {"a.active.pem": es, "b.active.pem": new_key("ES256")},
        JWT_ALGORITHM="ES256",
    )
    case("rsa-for-es256", "JWT_KEYS_DIR", {"a.active.pem": new_rsa(2048)}, JWT_ALGORITHM="ES256")
    case(
        "p384-for-es256",
        "JWT_KEYS_DIR",
        {"a.active.pem": ec.generate_private_key(ec.SECP384R1())},
        JWT_ALGORITHM="ES256",
    )
    case("ec-for-eddsa", "JWT_KEYS_DIR", {"a.active.pem": es}, JWT_ALGORITHM="EdDSA")
    case("ed25519-for-rs256", "JWT_KEYS_DIR", {"a.active.pem": new_key("EdDSA")}, JWT_ALGORITHM="RS256")
    case("rsa-1024", "JWT_KEYS_DIR", {"a.active.pem": new_rsa(1024)}, JWT_ALGORITHM="RS256")
    case("hs256-with-keys-dir", "JWT_KEYS_DIR", {"a.active.pem": es})
    case("hs256-explicit-with-keys-dir", "JWT_KEYS_DIR", {"a.active.pem": es}, JWT_ALGORITHM="HS256")
    case("bad-state-name", "JWT_KEYS_DIR", {"a.current.pem": es}, JWT_ALGORITHM="ES256")
    case("no-state", "JWT_KEYS_DIR", {"a.pem": es}, JWT_ALGORITHM="ES256")
    case("bad-kid", "JWT_KEYS_DIR", {"a b.active.pem": es}, JWT_ALGORITHM="ES256")
    case("reserved-kid", "JWT_KEYS_DIR", {"hs256.active.pem": es}, JWT_ALGORITHM="ES256")
    case(
        "same-kid-twice",
        "JWT_KEYS_DIR",
        {"a.active.pem": es, "a.retired.pem": new_key("ES256")},
        JWT_ALGORITHM="ES256",
    )
    if only in (None, "encrypted-pem"):
        write_key(tmp_path / "encrypted-pem", "a.active.pem", es, password=b"hunter2hunter2")
    case("encrypted-pem", "JWT_KEYS_DIR", {}, JWT_ALGORITHM="ES256")
    public_pem = es.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    case("public-key-only", "JWT_KEYS_DIR", {"a.active.pem": public_pem}, JWT_ALGORITHM="ES256")
    case("not-pem", "JWT_KEYS_DIR", {"a.active.pem": b"hello"}, JWT_ALGORITHM="ES256")
    case("empty-dir", "JWT_KEYS_DIR", {}, JWT_ALGORITHM="ES256")
    case("missing-dir", "JWT_KEYS_DIR", JWT_ALGORITHM="ES256", JWT_KEYS_DIR=str(tmp_path / "nowhere"))
    case("es256-without-dir", "JWT_KEYS_DIR", JWT_ALGORITHM="ES256")
    case("retired-only", "JWT_KEYS_DIR", {"a.retired.pem": es}, JWT_ALGORITHM="ES256")
    case("unknown-algorithm", "JWT_ALGORITHM", JWT_ALGORITHM="PS256")
    case("alg-none", "JWT_ALGORITHM", JWT_ALGORITHM="none")
    return cases


def new_rsa(bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def test_key_configuration_errors_are_refused(mongo: Server, tmp_path: Path) -> None:
    """Every bad key setup is a ConfigError naming the variable (checked in-process: it is fast)."""
    failures = []
    for name, (extra, variable) in _config_cases(tmp_path / "cases").items():
        env = auth_env(mongo.port, **extra)
        try:
            create_app(load_settings(Env([env]), root=tmp_path))
        except ConfigError as exc:
            if exc.name != variable:
                failures.append(f"{name}: names {exc.name}, expected {variable}")
        else:
            failures.append(f"{name}: accepted")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("name", ["two-active", "rsa-for-es256", "hs256-with-keys-dir", "bad-state-name"])
def test_key_configuration_errors_stop_startup(mongo: Server, tmp_path: Path, name: str) -> None:
    """`python -m services.auth` exits 2 with one line on stderr naming the variable."""
    extra, variable = _config_cases(tmp_path / "cases", only=name)[name]
    env = auth_env(mongo.port, AUTH_PORT="0", AUTH_MANAGEMENT_PORT="0", **extra)
    proc = run_to_exit("services.auth", env, tmp_path / "run", timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr, proc.stdout[-500:])
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"config error: {variable}:"), lines[0]
