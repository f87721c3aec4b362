"""Access-token verification on the API: header and claims, forgeries and JWT attacks."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import jwt

from tests.auth.conftest import AuthApp
from tests.auth.session_helpers import (
    ACCESS_CLAIMS,
    b64,
    email,
    segments,
    unsigned,
    user_status,
)

# Access tokens -------------------------------------------------------------------------


async def test_access_token_header_and_claims(app_factory: Callable[..., Any]) -> None:
    async with app_factory(
        SESSION_EXPIRY="1000 * 60 * 5", JWT_ISSUER="https://id.example", JWT_AUDIENCE="chat"
    ) as auth:
        address = email()
        await auth.register(address, username="trinity")
        body = await auth.login_body(address)
        header = jwt.get_unverified_header(body["token"])
        assert header["typ"] == "at+jwt"
        assert header["alg"] == "HS256"
        claims = jwt.decode(
            body["token"],
            auth.settings.jwt_secret,
            algorithms=["HS256"],
            audience="chat",
            issuer="https://id.example",
        )
        assert set(claims) == ACCESS_CLAIMS
        assert claims["sub"] == claims["id"] == body["user"]["id"]
        assert claims["email"] == address
        assert claims["username"] == "trinity"
        assert claims["provider"] == "local"
        assert claims["role"] == "USER"
        assert claims["exp"] - claims["iat"] == 300
        assert abs(claims["iat"] - time.time()) < 600
        session = await auth.collection("auth_sessions").find_one({})
        assert session is not None
        assert claims["sid"] == session["_id"]
        refreshed = (await auth.refresh(body["refresh_token"])).json()["token"]
        again = jwt.decode(refreshed, options={"verify_signature": False})
        assert again["jti"] != claims["jti"]
        assert again["sid"] == claims["sid"]
        assert again["exp"] - again["iat"] == 300


async def test_default_access_token_lifetime(auth: AuthApp) -> None:
    claims = jwt.decode((await auth.user(email()))["token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 900
    assert claims["iss"] == claims["aud"] == "authgate"


class Forge:
    """Builds tokens for one user/session with the server's own secret, then breaks one thing."""

    def __init__(self, auth: AuthApp, body: dict[str, Any]) -> None:
        self.secret = auth.settings.jwt_secret
        _, self.claims, _ = segments(body["token"])

    def sign(self, claims: dict[str, Any] | None = None, key: str | None = None, **header: Any) -> str:
        headers = {"typ": "at+jwt", **header}
        return jwt.encode(claims or self.claims, key or self.secret, algorithm="HS256", headers=headers)


async def test_forged_token_with_the_real_secret_works(auth: AuthApp) -> None:
    """Sanity check for the attack tests below: the forge produces what the server accepts."""
    forge = Forge(auth, await auth.user(email()))
    assert await user_status(auth, forge.sign()) == 200


async def test_alg_none_in_any_case(auth: AuthApp) -> None:
    body = await auth.user(email())
    header, claims, signature = segments(body["token"])
    for alg in ("none", "None", "NoNe", "NONE", "nOnE"):
        assert await user_status(auth, unsigned({**header, "alg": alg}, claims)) == 401
        assert await user_status(auth, unsigned({**header, "alg": alg}, claims, signature)) == 401
    assert await user_status(auth, unsigned({"alg": "none"}, claims)) == 401


async def test_tampered_tokens(auth: AuthApp) -> None:
    body = await auth.user(email())
    token = body["token"]
    header_b64, payload_b64, signature = token.split(".")
    header, claims, _ = segments(token)
    # A changed claim with the original signature.
    for change in ({"role": "ADMIN"}, {"sub": "0" * 24}, {"exp": claims["exp"] + 3600}):
        assert await user_status(auth, unsigned(header, {**claims, **change}, signature)) == 401
    # One flipped character in the payload; a stripped or truncated signature.
    flipped = payload_b64[:10] + ("A" if payload_b64[10] != "A" else "B") + payload_b64[11:]
    for bad in (
        f"{header_b64}.{flipped}.{signature}",
        f"{header_b64}.{payload_b64}.",
        f"{header_b64}.{payload_b64}",
        f"{header_b64}.{payload_b64}.{signature[:-4]}",
        f"{header_b64}.{payload_b64}.{signature}.{signature}",
        f"{header_b64}..{signature}",
        "..",
        token.replace(".", "!"),
    ):
        assert await user_status(auth, bad) == 401, bad
    # Splice: the header and payload of one user with the signature of another.
    other = await auth.user(email())
    other_signature = other["token"].split(".")[2]
    assert await user_status(auth, f"{header_b64}.{payload_b64}.{other_signature}") == 401
    assert await user_status(auth, token) == 200


async def test_typ_is_required(auth: AuthApp) -> None:
    forge = Forge(auth, await auth.user(email()))
    no_typ = jwt.encode(forge.claims, forge.secret, algorithm="HS256", headers={"typ": None})
    assert "typ" not in jwt.get_unverified_header(no_typ)
    assert await user_status(auth, no_typ) == 401
    for typ in ("JWT", "jwt", "refresh+jwt", "", "at+jwt "):
        assert await user_status(auth, forge.sign(typ=typ)) == 401, typ


async def test_issuer_and_audience_must_match(auth: AuthApp) -> None:
    forge = Forge(auth, await auth.user(email()))
    for change in (
        {"iss": "evil"},
        {"iss": "authgat"},
        {"iss": "authgate "},
        {"aud": "other"},
        {"aud": ["other"]},
    ):
        assert await user_status(auth, forge.sign({**forge.claims, **change})) == 401, change
    for claim in ("iss", "aud", "exp", "iat", "sub", "sid", "jti"):
        missing = {k: v for k, v in forge.claims.items() if k != claim}
        assert await user_status(auth, forge.sign(missing)) == 401, claim
    for bad in ({"sub": 12345}, {"sid": ["x"]}, {"jti": None}, {"exp": "never"}):
        assert await user_status(auth, forge.sign({**forge.claims, **bad})) == 401, bad


async def test_expiry_and_leeway(auth: AuthApp) -> None:
    forge = Forge(auth, await auth.user(email()))
    now = int(time.time())
    expired = {**forge.claims, "iat": now - 3600, "exp": now - 600}
    assert await user_status(auth, forge.sign(expired)) == 401
    just_expired = {**forge.claims, "iat": now - 900, "exp": now - 5}
    assert await user_status(auth, forge.sign(just_expired)) == 200  # within the small leeway
    future = {**forge.claims, "iat": now + 3600, "exp": now + 7200}
    assert await user_status(auth, forge.sign(future)) == 401
    not_yet = {**forge.claims, "nbf": now + 3600}
    assert await user_status(auth, forge.sign(not_yet)) == 401


async def test_wrong_keys_and_algorithms(auth: AuthApp) -> None:
    forge = Forge(auth, await auth.user(email()))
    assert await user_status(auth, forge.sign(key=secrets.token_hex(32))) == 401
    assert await user_status(auth, forge.sign(key=auth.settings.jwt_refresh_secret)) == 401
    for alg in ("HS384", "HS512"):
        token = jwt.encode(forge.claims, forge.secret, algorithm=alg, headers={"typ": "at+jwt"})
        assert await user_status(auth, token) == 401, alg
    # Header fields that point at attacker keys are ignored: an attacker-signed token stays invalid.
    attacker = secrets.token_hex(32)
    jwk = {"kty": "oct", "k": b64(attacker.encode())}
    for extra in (
        {"jwk": jwk},
        {"jku": "http://127.0.0.1:1/jwks"},
        {"kid": "attacker"},
        {"x5u": "http://x/"},
    ):
        assert await user_status(auth, forge.sign(key=attacker, **extra)) == 401, list(extra)
    # Unknown kids and critical extensions are refused even with the right secret.
    odd: list[dict[str, Any]] = [
        {"kid": "../../etc/passwd"},
        {"kid": "x" * 10_000},
        {"kid": "' or 1=1"},
        {"crit": ["x"]},
    ]
    for extra in odd:
        assert await user_status(auth, forge.sign(**extra)) == 401, list(extra)


async def test_oversized_and_odd_tokens(auth: AuthApp) -> None:
    forge = Forge(auth, await auth.user(email()))
    padded = {**forge.claims, "pad": "x" * (100 * 1024)}
    assert await user_status(auth, forge.sign(padded)) == 401
    assert await user_status(auth, "a" * (100 * 1024)) == 401
    assert await user_status(auth, "a.b.c.d.e") == 401  # JWE shape
    assert await user_status(auth, json.dumps({"payload": "x", "signatures": []})) == 401
    raw = [(b"Authorization", "Bearer €.€.€".encode())]
    assert (await auth.client.get("/api/user", headers=raw)).status_code == 401


async def test_token_of_deleted_user(auth: AuthApp) -> None:
    address = email()
    body = await auth.user(address)
    await auth.collection("users").delete_one({"email": address})
    response = await auth.get("/api/user", body["token"])
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
