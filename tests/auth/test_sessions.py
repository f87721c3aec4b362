"""Sessions as refresh-token families, revocation, and access-token verification (JWT attacks)."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from services.auth.sessions import token_hash
from tests.auth.conftest import AuthApp

ACCESS_CLAIMS = {
    "sub",
    "ep",  # the user's session epoch: tokens from before an all-sessions revocation are refused
    "id",
    "username",
    "provider",
    "email",
    "role",
    "sid",
    "jti",
    "iat",
    "exp",
    "iss",
    "aud",
}


def email() -> str:
    return f"user-{secrets.token_hex(4)}@example.com"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(header + "==")),
        json.loads(base64.urlsafe_b64decode(payload + "==")),
        signature,
    )


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: str = "") -> str:
    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), signature])


async def user_status(auth: AuthApp, token: str) -> int:
    return (await auth.get("/api/user", token)).status_code


async def revocations(auth: AuthApp, **query: Any) -> list[dict[str, Any]]:
    return [doc async for doc in auth.collection("auth_revocations").find(query)]


# Rotation ------------------------------------------------------------------------------


async def test_parent_within_grace_period_yields_the_same_child(auth: AuthApp) -> None:
    body = await auth.user(email())
    rt1 = body["refresh_token"]
    first = await auth.refresh(rt1)
    assert first.status_code == 200
    rt2 = first.json()["refresh_token"]
    assert rt2 != rt1
    again = await auth.refresh(rt1)  # default grace period: 10 s
    assert again.status_code == 200
    assert again.json()["refresh_token"] == rt2
    assert (await auth.refresh(rt2)).status_code == 200
    assert await auth.collection("auth_audit").count_documents({"event": "refresh_token_reuse"}) == 0


async def test_twenty_concurrent_refreshes_share_one_child(auth: AuthApp) -> None:
    body = await auth.user(email())
    parent = body["refresh_token"]
    responses = await asyncio.gather(*(auth.refresh(parent) for _ in range(20)))
    assert [r.status_code for r in responses] == [200] * 20, [
        r.text for r in responses if r.status_code != 200
    ]
    children = {r.json()["refresh_token"] for r in responses}
    assert len(children) == 1
    child = children.pop()
    assert child != parent
    # One chain: a single session, whose current token is the child.
    sessions = [doc async for doc in auth.collection("auth_sessions").find({})]
    assert len(sessions) == 1
    assert sessions[0]["current_hash"] == token_hash(child)
    assert sessions[0]["revoked_at"] is None
    # Every access token handed out belongs to that session and works.
    sids = {jwt.decode(r.json()["token"], options={"verify_signature": False})["sid"] for r in responses}
    assert sids == {sessions[0]["_id"]}
    assert await user_status(auth, responses[0].json()["token"]) == 200
    # The child refreshes normally and the chain goes on.
    grandchild = await auth.refresh(child)
    assert grandchild.status_code == 200
    assert grandchild.json()["refresh_token"] not in (parent, child)
    assert await auth.collection("auth_audit").count_documents({"event": "refresh_token_reuse"}) == 0


async def test_concurrent_cookie_refreshes_share_one_child(auth: AuthApp) -> None:
    address = email()
    await auth.register(address)
    login = await auth.login(address)
    parent = login.cookies["refreshToken"]
    auth.client.cookies.clear()
    responses = await asyncio.gather(
        *(
            auth.client.post("/api/auth/refresh", headers={"Cookie": f"refreshToken={parent}"})
            for _ in range(10)
        )
    )
    assert [r.status_code for r in responses] == [200] * 10
    assert len({r.cookies["refreshToken"] for r in responses}) == 1


async def test_replay_of_parent_after_grace_revokes_the_session(app_factory: Callable[..., Any]) -> None:
    async with app_factory(REFRESH_GRACE_PERIOD="200") as auth:
        body = await auth.user(email())
        rt1 = body["refresh_token"]
        rotated = await auth.refresh(rt1)
        assert rotated.status_code == 200
        rt2, access = rotated.json()["refresh_token"], rotated.json()["token"]
        await asyncio.sleep(0.6)
        replay = await auth.refresh(rt1)
        assert replay.status_code == 401
        assert replay.json()["code"] == "invalid_refresh_token"
        # The whole family is gone: the newest token and the access tokens too.
        assert (await auth.refresh(rt2)).status_code == 401
        assert await user_status(auth, access) == 401
        assert await user_status(auth, body["token"]) == 401
        session = await auth.collection("auth_sessions").find_one({})
        assert session is not None
        assert session["revoked_reason"] == "refresh_token_reuse"
        records = [doc async for doc in auth.collection("auth_audit").find({"event": "refresh_token_reuse"})]
        assert len(records) == 1
        assert records[0]["user_id"] == body["user"]["id"]
        assert records[0]["session_id"] == session["_id"]
        dumped = json.dumps(records[0], default=str)
        assert rt1 not in dumped
        assert rt2 not in dumped
        assert len(await revocations(auth, reason="refresh_token_reuse", sid=session["_id"])) == 1


async def test_replay_of_grandparent_revokes_the_session(auth: AuthApp) -> None:
    body = await auth.user(email())
    rt1 = body["refresh_token"]
    rt2 = (await auth.refresh(rt1)).json()["refresh_token"]
    rt3 = (await auth.refresh(rt2)).json()["refresh_token"]
    # rt1 is two generations old: reuse even inside the grace period.
    assert (await auth.refresh(rt1)).status_code == 401
    assert (await auth.refresh(rt3)).status_code == 401
    assert (await auth.refresh(rt2)).status_code == 401
    assert await auth.collection("auth_audit").count_documents({"event": "refresh_token_reuse"}) == 1


async def test_reuse_does_not_touch_other_sessions(app_factory: Callable[..., Any]) -> None:
    async with app_factory(REFRESH_GRACE_PERIOD="0") as auth:
        address = email()
        await auth.register(address)
        stolen = await auth.login_body(address)
        other = await auth.login_body(address)
        rotated = (await auth.refresh(stolen["refresh_token"])).json()["refresh_token"]
        assert (await auth.refresh(stolen["refresh_token"])).status_code == 401
        assert (await auth.refresh(rotated)).status_code == 401
        assert (await auth.refresh(other["refresh_token"])).status_code == 200


async def test_grace_path_requires_a_live_session(auth: AuthApp) -> None:
    """Inside the grace period the parent still yields nothing once the session has ended."""
    body = await auth.user(email())
    rotated = (await auth.refresh(body["refresh_token"])).json()
    response = await auth.client.post("/api/auth/logout", json={"refresh_token": rotated["refresh_token"]})
    assert response.status_code == 200
    assert (await auth.refresh(body["refresh_token"])).status_code == 401
    assert (await auth.refresh(rotated["refresh_token"])).status_code == 401


async def test_grace_path_refuses_an_idle_session(app_factory: Callable[..., Any]) -> None:
    async with app_factory(SESSION_IDLE_TIMEOUT="1000", REFRESH_GRACE_PERIOD="1000 * 60") as auth:
        body = await auth.user(email())
        rotated = await auth.refresh(body["refresh_token"])
        if rotated.status_code != 200:  # a very slow machine already idled out: nothing to test
            pytest.skip("login and first refresh took longer than the idle timeout")
        await asyncio.sleep(1.5)
        assert (await auth.refresh(body["refresh_token"])).status_code == 401
        assert (await auth.refresh(rotated.json()["refresh_token"])).status_code == 401


async def test_refresh_tokens_are_stored_only_as_hashes(auth: AuthApp) -> None:
    body = await auth.user(email())
    tokens = [body["refresh_token"]]
    for _ in range(3):
        tokens.append((await auth.refresh(tokens[-1])).json()["refresh_token"])
    assert len(set(tokens)) == 4
    assert all(len(t) >= 43 for t in tokens)  # 256 bits in base64url
    dump = json.dumps([doc async for doc in auth.collection("auth_sessions").find({})], default=str)
    dump += json.dumps([doc async for doc in auth.collection("auth_audit").find({})], default=str)
    for token in tokens:
        assert token not in dump
        assert token_hash(token) in dump or token == tokens[0]


# Limits and revocation -----------------------------------------------------------------


async def test_max_sessions_per_user_evicts_the_oldest(app_factory: Callable[..., Any]) -> None:
    async with app_factory(MAX_SESSIONS_PER_USER="2") as auth:
        address = email()
        await auth.register(address)
        logins = []
        for _ in range(3):
            logins.append(await auth.login_body(address))
            await asyncio.sleep(0.01)  # distinct creation times
        assert (await auth.refresh(logins[0]["refresh_token"])).status_code == 401
        assert await user_status(auth, logins[0]["token"]) == 401
        for kept in logins[1:]:
            assert await user_status(auth, kept["token"]) == 200
        listed = (await auth.get("/api/auth/sessions", logins[2]["token"])).json()
        assert len(listed) == 2
        evicted = await revocations(auth, reason="max_sessions")
        assert len(evicted) == 1
        assert evicted[0]["user_id"] == logins[0]["user"]["id"]
        # Another user is not affected by this user's limit.
        other = await auth.user(email())
        assert await user_status(auth, other["token"]) == 200


async def test_access_token_of_revoked_session_is_refused(auth: AuthApp) -> None:
    body = await auth.user(email())
    assert await user_status(auth, body["token"]) == 200
    sid = jwt.decode(body["token"], options={"verify_signature": False})["sid"]
    await auth.ctx.sessions.revoke(user_id=body["user"]["id"], session_ids=[sid], reason="test", actor="test")
    response = await auth.get("/api/user", body["token"])
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    # Appending padding does not revive it (revocation is by session, not by token bytes).
    assert await user_status(auth, body["token"] + "=") == 401
    assert (await auth.get("/api/auth/sessions", body["token"])).status_code == 401


async def test_every_revocation_is_recorded(auth: AuthApp) -> None:
    address = email()
    await auth.register(address)
    a, b, c, d = [await auth.login_body(address) for _ in range(4)]
    user_id = a["user"]["id"]

    def sid(body: dict[str, Any]) -> str:
        return str(jwt.decode(body["token"], options={"verify_signature": False})["sid"])

    bearer = {"Authorization": f"Bearer {a['token']}"}
    assert (await auth.client.delete(f"/api/auth/sessions/{sid(b)}", headers=bearer)).status_code == 200
    assert (await auth.client.delete("/api/auth/sessions", headers=bearer)).status_code == 200
    assert (await auth.client.post("/api/auth/logout", headers=bearer)).status_code == 200
    records = await revocations(auth, user_id=user_id)
    by_reason: dict[str, set[str | None]] = {}
    for record in records:
        by_reason.setdefault(record["reason"], set()).add(record["sid"])
        assert record["at"] is not None
        assert record["expires_at"] > record["at"]
    assert by_reason["user_revoked"] == {sid(b)}
    assert by_reason["user_revoked_others"] == {sid(c), sid(d)}
    assert by_reason["logout"] == {sid(a)}
    sessions = [doc async for doc in auth.collection("auth_sessions").find({"user_id": user_id})]
    assert all(doc["revoked_at"] is not None for doc in sessions)
    events = await auth.collection("auth_audit").count_documents(
        {"event": "session_revoked", "user_id": user_id}
    )
    assert events == 3
    assert await auth.collection("auth_audit").count_documents({"event": "logout", "user_id": user_id}) == 1


async def test_refresh_token_is_not_an_access_token(auth: AuthApp) -> None:
    body = await auth.user(email())
    refresh_token = body["refresh_token"]
    for path in ("/api/user", "/api/auth/sessions"):
        response = await auth.get(path, refresh_token)
        assert response.status_code == 401
        assert response.json()["code"] == "unauthorized"
    response = await auth.client.delete(
        "/api/auth/sessions", headers={"Authorization": f"Bearer {refresh_token}"}
    )
    assert response.status_code == 401
    # Still a perfectly good refresh token.
    assert (await auth.refresh(refresh_token)).status_code == 200


async def test_access_token_is_not_a_refresh_token(auth: AuthApp) -> None:
    body = await auth.user(email())
    access = body["token"]
    response = await auth.client.post("/api/auth/refresh", headers={"Cookie": f"refreshToken={access}"})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_refresh_token"
    response = await auth.refresh(access)
    assert response.status_code in (
        401,
        422,
    )  # longer than any refresh token: refused by the schema or the store
    assert "token" not in response.json()
    assert await auth.collection("auth_audit").count_documents({"event": "refresh_token_reuse"}) == 0
    assert await user_status(auth, access) == 200


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
    for extra in ({"kid": "../../etc/passwd"}, {"kid": "x" * 10_000}, {"kid": "' or 1=1"}, {"crit": ["x"]}):
        assert await user_status(auth, forge.sign(**extra)) == 401, list(extra)


async def test_oversized_and_odd_tokens(auth: AuthApp) -> None:
    forge = Forge(auth, await auth.user(email()))
    padded = {**forge.claims, "pad": "x" * (100 * 1024)}
    assert await user_status(auth, forge.sign(padded)) == 401
    assert await user_status(auth, "a" * (100 * 1024)) == 401
    assert await user_status(auth, "a.b.c.d.e") == 401  # JWE shape
    assert await user_status(auth, json.dumps({"payload": "x", "signatures": []})) == 401
    raw = {"Authorization": "Bearer €.€.€".encode()}
    assert (await auth.client.get("/api/user", headers=raw)).status_code == 401


async def test_token_of_deleted_user(auth: AuthApp) -> None:
    address = email()
    body = await auth.user(address)
    await auth.collection("users").delete_one({"email": address})
    response = await auth.get("/api/user", body["token"])
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
