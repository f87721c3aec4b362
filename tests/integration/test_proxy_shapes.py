"""/verify called exactly as Traefik ForwardAuth and Envoy's HTTP ext_authz call it, in-process.

Traefik: always `GET <address>` (the configured `/verify` or `/verify?roles=ADMIN`) with the
client's Authorization and X-Forwarded-Method/-Proto/-Host/-Uri/-For describing the request.
Envoy: the client's own method, `path_prefix` + the client's path and query
(`/verify/api/x?roles=...`, whose `roles` must be ignored), no body (Content-Length: 0), and
the required roles in `X-Auth-Required-Roles`, a header only the proxy sets.

The app runs in-process over the real store; the "proxy" is the ASGI client's peer address.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from services.auth.api.verify import BanNotice
from tests.harness import Server
from tests.integration.support import IDENTITY_HEADERS, InProcess, running_app

PROXY_PEER = "10.0.0.2"  # Traefik / Envoy, inside TRUSTED_PROXIES
OUTSIDER_PEER = "203.0.113.9"  # anyone else who can reach the auth service
CLIENT_IP = "198.51.100.7"
TRUSTED = {"TRUST_PROXY": "1", "TRUSTED_PROXIES": "10.0.0.0/8"}
ENVOY_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@dataclass
class Shapes:
    app: InProcess
    proxy: httpx.AsyncClient
    user: dict[str, Any]
    admin: dict[str, Any]

    @property
    def secret(self) -> str:
        return self.app.ctx.settings.jwt_secret

    async def traefik(
        self,
        token: str | None,
        address: str = "/verify",
        *,
        method: str = "GET",
        uri: str = "/api/things?page=2",
        client_ip: str = CLIENT_IP,
        client: httpx.AsyncClient | None = None,
        authorization: str | None = None,
    ) -> httpx.Response:
        """Traefik's forward-auth request: always GET to the configured address."""
        headers = {
            "X-Forwarded-Method": method,
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "app.example.com",
            "X-Forwarded-Uri": uri,
            "X-Forwarded-For": client_ip,
            "X-Request-Id": "traefik-req-1",
            "Accept-Encoding": "gzip",
        }
        if authorization is not None:
            headers["Authorization"] = authorization
        elif token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return await (client or self.proxy).get(address, headers=headers)

    async def envoy(
        self,
        token: str | None,
        client_path: str = "/api/x",
        *,
        method: str = "POST",
        required: str | None = None,
    ) -> httpx.Response:
        """Envoy's ext_authz HTTP request: the client's method, /verify + the client's path and query."""
        headers = {
            "Host": "app.example.com",
            "Content-Length": "0",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-For": CLIENT_IP,
            "X-Request-Id": "3f1c2a4e-envoy",
            "X-Envoy-Expected-Rq-Timeout-Ms": "500",
            "X-Envoy-Internal": "true",
        }
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if required is not None:
            headers["X-Auth-Required-Roles"] = required
        return await self.proxy.request(method, "/verify" + client_path, headers=headers)


@pytest.fixture(scope="module")
async def shapes(mongo: Server, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Shapes]:
    root = tmp_path_factory.mktemp("proxy-shapes")
    async with running_app(mongo.port, root, **TRUSTED) as app:
        user = await app.user("user@example.com")
        admin = await app.user("admin@example.com", role="ADMIN")
        yield Shapes(app, app.client(PROXY_PEER), user, admin)


def assert_allowed(response: httpx.Response, body: dict[str, Any]) -> None:
    assert response.status_code == 200, response.text
    user = body["user"]
    assert response.headers["x-auth-user-id"] == user["id"]
    assert response.headers["x-auth-email"] == user["email"]
    assert response.headers["x-auth-role"] == user["role"]
    assert response.headers["x-auth-session-id"]
    assert "x-auth-username" in response.headers
    assert response.headers["cache-control"] == "no-store"


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    for name in IDENTITY_HEADERS:
        assert name not in response.headers


def assert_forbidden(response: httpx.Response, code: str = "forbidden") -> None:
    assert response.status_code == 403, response.text
    assert response.json()["code"] == code
    for name in IDENTITY_HEADERS:
        assert name not in response.headers


# Traefik ForwardAuth ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "HEAD", "OPTIONS"])
async def test_traefik_valid_token_passes_with_identity(shapes: Shapes, method: str) -> None:
    response = await shapes.traefik(shapes.user["token"], method=method)
    assert_allowed(response, shapes.user)
    assert response.headers["x-request-id"] == "traefik-req-1"


async def test_traefik_without_or_with_bad_token_is_401(shapes: Shapes) -> None:
    missing = await shapes.traefik(None)
    assert_unauthorized(missing)
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["code"] == "unauthorized"
    for authorization in ("Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "bearer", "Bearer a.b.c"):
        assert_unauthorized(await shapes.traefik(None, authorization=authorization))
    bad = await shapes.traefik("x.y.z")
    assert_unauthorized(bad)
    assert bad.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_traefik_bearer_scheme_is_case_insensitive(shapes: Shapes) -> None:
    response = await shapes.traefik(None, authorization=f"bearer {shapes.user['token']}")
    assert_allowed(response, shapes.user)


async def test_traefik_admin_address_refuses_user_admits_admin(shapes: Shapes) -> None:
    assert_forbidden(await shapes.traefik(shapes.user["token"], "/verify?roles=ADMIN"))
    # The client's own `roles` only travels in X-Forwarded-Uri: it changes nothing.
    forged_uri = "/admin/users?roles=USER"
    assert_forbidden(await shapes.traefik(shapes.user["token"], "/verify?roles=ADMIN", uri=forged_uri))
    assert_allowed(await shapes.traefik(shapes.admin["token"], "/verify?roles=ADMIN"), shapes.admin)
    # Lists and letter case, as an operator may write them.
    for address in ("/verify?roles=admin,%20USER", "/verify?roles=USER,ADMIN", "/verify?roles="):
        assert_allowed(await shapes.traefik(shapes.user["token"], address), shapes.user)
    assert_forbidden(await shapes.traefik(shapes.user["token"], "/verify?roles=ADMIN,OWNER"))


@pytest.mark.parametrize(
    "query",
    ["roles=ADMIN&roles=USER", "roles=USER&roles=USER", "roles=ADMIN&%72oles=USER", "roles=&roles=ADMIN"],
)
async def test_repeated_roles_is_400(shapes: Shapes, query: str) -> None:
    for token in (shapes.user["token"], shapes.admin["token"], None):
        response = await shapes.traefik(token, f"/verify?{query}")
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "bad_request"
        assert "x-auth-user-id" not in response.headers
    head = await shapes.proxy.head(
        f"/verify?{query}", headers={"Authorization": f"Bearer {shapes.user['token']}"}
    )
    assert head.status_code == 400


async def test_token_in_query_string_is_401(shapes: Shapes) -> None:
    token = shapes.user["token"]
    # On /verify itself an unknown query parameter is the proxy's mistake: 400, never a pass.
    for address in (f"/verify?access_token={token}", f"/verify?roles=USER&access_token={token}"):
        response = await shapes.traefik(None, address)
        assert response.status_code == 400
        assert response.json()["code"] == "bad_request"
    assert_unauthorized(await shapes.envoy(None, f"/api/x?access_token={token}"))


# Envoy ext_authz (HTTP service) -----------------------------------------------------------------


@pytest.mark.parametrize("method", ENVOY_METHODS)
async def test_envoy_original_method_and_path(shapes: Shapes, method: str) -> None:
    response = await shapes.envoy(shapes.user["token"], "/api/x/1?page=2", method=method)
    assert_allowed(response, shapes.user)
    if method == "HEAD":
        assert response.content == b""
    refused = await shapes.envoy(None, "/api/x/1", method=method)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")


async def test_envoy_client_roles_in_path_are_ignored(shapes: Shapes) -> None:
    # No header from the proxy: no role needed, whatever the client's query says.
    assert_allowed(await shapes.envoy(shapes.user["token"], "/api/x?roles=ADMIN"), shapes.user)
    # Repeated in the client's part: still only the client's business, not a 400.
    assert_allowed(await shapes.envoy(shapes.user["token"], "/api/x?roles=ADMIN&roles=USER"), shapes.user)
    # The proxy's header decides; the client's `roles=USER` cannot lower it.
    for path in ("/admin/users", "/admin/users?roles=USER", "/verify?roles=USER", "?roles=USER"):
        client_path = path if path.startswith("/") else "/" + path
        assert_forbidden(await shapes.envoy(shapes.user["token"], client_path, required="ADMIN"))
        assert_allowed(await shapes.envoy(shapes.admin["token"], client_path, required="ADMIN"), shapes.admin)
    assert_allowed(await shapes.envoy(shapes.user["token"], "/x", required="user, admin"), shapes.user)


@pytest.mark.parametrize("client_path", ["/", "//double", "/a%2Fb/../c", "/%00", "/verify", "/v;x=1"])
async def test_envoy_odd_client_paths_follow_the_same_rules(shapes: Shapes, client_path: str) -> None:
    assert_allowed(await shapes.envoy(shapes.user["token"], client_path, method="GET"), shapes.user)
    assert_unauthorized(await shapes.envoy("nope", client_path, method="GET"))
    assert_forbidden(await shapes.envoy(shapes.user["token"], client_path, method="GET", required="ADMIN"))


@pytest.mark.parametrize("path", ["/verifyx", "/verify.json", "/Verify", "/VERIFY/x", "/api/verify"])
async def test_lookalike_paths_never_answer_as_verify(shapes: Shapes, path: str) -> None:
    response = await shapes.proxy.get(path, headers={"Authorization": f"Bearer {shapes.admin['token']}"})
    assert response.status_code in (404, 405)
    assert "x-auth-user-id" not in response.headers


# Tokens --------------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def claims(shapes: Shapes, body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = jwt.decode(body["token"], options={"verify_signature": False})
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not None}


def hs256(shapes: Shapes, payload: dict[str, Any], **header: Any) -> str:
    """A token MACed with the service's real secret, so only the tested property can make it fail.

    Built by hand, so headers PyJWT itself would refuse to write (a numeric kid) can be sent.
    """
    fields = {"alg": "HS256", "typ": "at+jwt", **header}
    fields = {k: v for k, v in fields.items() if v is not None}
    signing_input = f"{b64(json.dumps(fields).encode())}.{b64(json.dumps(payload).encode())}"
    mac = hmac.new(shapes.secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: str = "") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{signature}"


async def test_refresh_token_as_bearer_is_401(shapes: Shapes) -> None:
    body = await shapes.app.user("refresh-bearer@example.com")
    assert_unauthorized(await shapes.traefik(body["refresh_token"]))
    assert_unauthorized(await shapes.envoy(body["refresh_token"]))


async def test_valid_forged_with_real_secret_is_accepted(shapes: Shapes) -> None:
    """Control for the tests below: the forging helper itself produces a token /verify accepts."""
    token = hs256(shapes, claims(shapes, shapes.user, jti="control"))
    assert_allowed(await shapes.traefik(token), shapes.user)


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
async def test_alg_none_in_any_case_is_401(shapes: Shapes, alg: str) -> None:
    payload = claims(shapes, shapes.admin)
    real_signature = shapes.admin["token"].rsplit(".", 1)[1]
    for signature in ("", real_signature):
        for header in ({"alg": alg, "typ": "at+jwt"}, {"alg": alg}):
            assert_unauthorized(await shapes.traefik(unsigned(header, payload, signature)))


async def test_rfc7515_unsecured_jws_is_401(shapes: Shapes) -> None:
    token = (
        "eyJhbGciOiJub25lIn0"
        ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
    )
    assert_unauthorized(await shapes.traefik(token))


async def test_tampered_tokens_are_401(shapes: Shapes) -> None:
    token = shapes.user["token"]
    header, payload, signature = token.split(".")
    promoted = b64(json.dumps(claims(shapes, shapes.user, role="ADMIN")).encode())
    admin_header, admin_payload, admin_signature = shapes.admin["token"].split(".")
    variants = {
        "role-escalated": f"{header}.{promoted}.{signature}",
        "signature-stripped": f"{header}.{payload}.",
        "two-segments": f"{header}.{payload}",
        "spliced": f"{header}.{payload}.{admin_signature}",
        "spliced-payload": f"{admin_header}.{admin_payload[:-2]}{payload[-2:]}.{admin_signature}",
        "four-segments": f"{token}.{signature}",
        "jwe-five-segments": f"{header}.{payload}.{signature}.{signature}.{signature}",
        "json-serialization": json.dumps({"payload": payload, "protected": header, "signature": signature}),
        "whitespace-inside": f"{header}. {payload}.{signature}",
    }
    for name, variant in variants.items():
        response = await shapes.traefik(variant, "/verify?roles=ADMIN")
        assert response.status_code == 401, name
        assert_unauthorized(await shapes.traefik(variant))


@pytest.mark.parametrize(
    ("name", "change", "header"),
    [
        ("expired", {"exp": int(time.time()) - 120, "iat": int(time.time()) - 1000}, {}),
        ("no-exp", {"exp": None}, {}),
        ("not-yet-valid", {"nbf": int(time.time()) + 3600}, {}),
        ("issuer-prefix", {"iss": "auth"}, {}),
        ("other-issuer", {"iss": "https://evil.example"}, {}),
        ("other-audience", {"aud": "billing"}, {}),
        ("no-audience", {"aud": None}, {}),
        ("audience-list-with-ours", {"aud": ["authgate", "billing"]}, {}),
        ("no-sid", {"sid": None}, {}),
        ("no-sub", {"sub": None}, {}),
        ("typ-jwt", {}, {"typ": "JWT"}),
        ("typ-refresh", {}, {"typ": "refresh+jwt"}),
        ("crit", {}, {"crit": ["x"], "x": 1}),
        ("kid-traversal", {}, {"kid": "../../etc/passwd"}),
        ("kid-injection", {}, {"kid": "' or 1=1 --"}),
        ("kid-huge", {}, {"kid": "k" * 4000}),
        ("kid-not-string", {}, {"kid": 7}),
        ("jku", {}, {"jku": "http://127.0.0.1:9/jwks.json", "kid": "attacker"}),
    ],
)
async def test_claims_and_header_rules(
    shapes: Shapes, name: str, change: dict[str, Any], header: dict[str, Any]
) -> None:
    token = hs256(shapes, claims(shapes, shapes.user, **change), **header)
    assert_unauthorized(await shapes.traefik(token))


async def test_no_typ_header_is_401(shapes: Shapes) -> None:
    token = hs256(shapes, claims(shapes, shapes.user), typ=None)
    assert "typ" not in jwt.get_unverified_header(token)
    assert_unauthorized(await shapes.traefik(token))


async def test_embedded_attacker_key_is_ignored(shapes: Shapes) -> None:
    """A token signed by the attacker's key, shipping that key in `jwk`: never trusted."""
    attacker = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(attacker.public_key()))
    payload = claims(shapes, shapes.admin)
    for extra in ({"jwk": jwk}, {"jwk": jwk, "kid": "attacker"}, {"x5u": "http://127.0.0.1:9/cert"}):
        token = jwt.encode(payload, attacker, algorithm="ES256", headers={"typ": "at+jwt", **extra})
        assert_unauthorized(await shapes.traefik(token))


async def test_oversized_tokens_are_refused_quickly(shapes: Shapes) -> None:
    payload = claims(shapes, shapes.user, pad="p" * 9000)
    big = hs256(shapes, payload)
    assert_unauthorized(await shapes.traefik(big))
    huge = "a" * (100 * 1024) + ".b.c"
    started = time.perf_counter()
    response = await shapes.traefik(huge)
    elapsed = time.perf_counter() - started
    assert response.status_code in (401, 431)
    assert elapsed < 2.0  # generous: the length check comes before any decoding


async def test_revoked_token_stays_revoked_under_padding(shapes: Shapes) -> None:
    """The revocation is keyed on the session id, not the token text (PyJWT accepts `token=`)."""
    body = await shapes.app.user("padding@example.com")
    token = body["token"]
    assert_allowed(await shapes.traefik(token), body)
    assert_allowed(await shapes.traefik(token + "="), body)  # the malleability is real...
    response = await shapes.app.client().post(
        "/api/auth/logout", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    for variant in (token, token + "=", token + "==", token + "%3D"):  # ...and changes nothing
        assert_unauthorized(await shapes.traefik(variant))
        assert_unauthorized(await shapes.envoy(variant))


async def test_random_mutations_never_pass(shapes: Shapes) -> None:
    token = shapes.admin["token"]
    segments = token.split(".")
    original = [b64decode(s) for s in segments]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    rng = random.Random(20261128)  # reproducible fuzzing
    tried = 0
    while tried < 250:
        chars = list(token)
        position = rng.randrange(len(chars))
        if chars[position] == ".":
            continue
        operation = rng.choice(["replace", "insert", "delete"])
        if operation == "replace":
            chars[position] = rng.choice(alphabet.replace(chars[position], ""))
        elif operation == "insert":
            chars.insert(position, rng.choice(alphabet))
        else:
            del chars[position]
        mutated = "".join(chars)
        parts = mutated.split(".")
        try:
            if len(parts) == 3 and [b64decode(p) for p in parts] == original:
                continue  # only the unused trailing bits changed: the same token bytes
        except ValueError:
            pass
        tried += 1
        response = await shapes.traefik(mutated, "/verify?roles=ADMIN")
        assert response.status_code == 401, (mutated, response.status_code)


# Client IP: X-Forwarded-For counts only from trusted proxies ---------------------------------


@dataclass
class RecordingBans:
    """Stands in for moderation's ban feed (not wired into /verify yet): bans and records lookups."""

    ips: set[str] = field(default_factory=set)
    users: set[str] = field(default_factory=set)
    seen: list[str | None] = field(default_factory=list)
    has_bans: bool = True

    def ban_for(self, ip: str | None, user_id: str | None) -> BanNotice | None:
        self.seen.append(ip)
        if ip in self.ips:
            return BanNotice(f"ip:{ip}", "abuse", "2030-01-01T00:00:00Z", 120)
        if user_id in self.users:
            return BanNotice(f"user:{user_id}", "spam", "2030-01-01T00:00:00Z", 60)
        return None


@pytest.fixture
async def banned(shapes: Shapes) -> AsyncIterator[RecordingBans]:
    bans = RecordingBans(ips={CLIENT_IP})
    verify = shapes.app.app.state.verify
    previous = verify._bans
    verify._bans = lambda: bans
    try:
        yield bans
    finally:
        verify._bans = previous


async def test_forwarded_for_from_trusted_proxy_is_honoured(shapes: Shapes, banned: RecordingBans) -> None:
    response = await shapes.traefik(shapes.user["token"], client_ip=CLIENT_IP)
    assert_forbidden(response, "banned")
    assert response.headers["retry-after"] == "120"
    assert banned.seen[-1] == CLIENT_IP
    # Envoy's shape carries it the same way.
    assert_forbidden(await shapes.envoy(shapes.user["token"]), "banned")


async def test_right_most_untrusted_entry_wins(shapes: Shapes, banned: RecordingBans) -> None:
    # A client prepends the banned address to frame someone, or appends nothing: the entry the
    # proxy added (right-most) is the one that counts.
    ok = await shapes.traefik(shapes.user["token"], client_ip=f"{CLIENT_IP}, 203.0.113.5")
    assert_allowed(ok, shapes.user)
    assert banned.seen[-1] == "203.0.113.5"
    dodge = await shapes.traefik(shapes.user["token"], client_ip=f"203.0.113.5, {CLIENT_IP}")
    assert_forbidden(dodge, "banned")


async def test_forwarded_for_from_untrusted_peer_is_ignored(shapes: Shapes, banned: RecordingBans) -> None:
    outsider = shapes.app.client(OUTSIDER_PEER)
    # An outsider cannot pin the banned address on the request...
    framed = await shapes.traefik(shapes.user["token"], client_ip=CLIENT_IP, client=outsider)
    assert_allowed(framed, shapes.user)
    assert banned.seen[-1] == OUTSIDER_PEER
    # ...and a banned peer cannot escape by claiming another one.
    banned_peer = shapes.app.client(CLIENT_IP)
    escape = await shapes.traefik(shapes.user["token"], client_ip="203.0.113.5", client=banned_peer)
    assert_forbidden(escape, "banned")
    assert banned.seen[-1] == CLIENT_IP


@pytest.mark.parametrize(
    "forwarded", ["garbage", "1.2.3.4, , ", "[2001:db8::1]:443", "::ffff:198.51.100.7", "1.2.3.4:8080", ""]
)
async def test_malformed_forwarded_for_is_deterministic(
    shapes: Shapes, banned: RecordingBans, forwarded: str
) -> None:
    first = await shapes.traefik(shapes.user["token"], client_ip=forwarded)
    second = await shapes.traefik(shapes.user["token"], client_ip=forwarded)
    assert first.status_code == second.status_code
    assert first.status_code in (200, 403)
    assert banned.seen[-1] == banned.seen[-2]
    if forwarded == "::ffff:198.51.100.7":
        assert first.status_code == 403  # the IPv4-mapped form is the same address


async def test_user_ban_applies_whatever_the_address(shapes: Shapes, banned: RecordingBans) -> None:
    banned.users.add(shapes.admin["user"]["id"])
    response = await shapes.traefik(shapes.admin["token"], "/verify?roles=ADMIN", client_ip="203.0.113.5")
    assert_forbidden(response, "banned")
    assert response.headers["retry-after"] == "60"


# Failure modes and configuration -------------------------------------------------------------


class Exploding:
    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"injected failure in {name}")


async def test_internal_error_is_500_never_2xx(inproc_factory: Any) -> None:
    async with inproc_factory(**TRUSTED) as app:
        body = await app.user("boom@example.com")
        client = app.client(PROXY_PEER)
        verify = app.app.state.verify
        headers = {"Authorization": f"Bearer {body['token']}"}
        # The key ring / verifier fails (first sight of the token: no cache entry yet).
        tokens = verify._tokens
        verify._tokens = Exploding()
        try:
            response = await client.get("/verify", headers=headers)
        finally:
            verify._tokens = tokens
        assert response.status_code == 500
        assert not set(IDENTITY_HEADERS) & set(response.headers)
        # Once cached, the revocation view fails.
        assert (await client.get("/verify", headers=headers)).status_code == 200
        revocations = verify._revocations
        verify._revocations = Exploding()
        try:
            for method in ("GET", "HEAD", "POST"):
                response = await client.request(method, "/verify/api/x", headers=headers)
                assert response.status_code == 500, method
                assert not set(IDENTITY_HEADERS) & set(response.headers)
        finally:
            verify._revocations = revocations
        assert (await client.get("/verify", headers=headers)).status_code == 200


async def test_header_prefix_is_configurable(inproc_factory: Any) -> None:
    async with inproc_factory(VERIFY_HEADER_PREFIX="X-Identity-") as app:
        body = await app.user("prefix@example.com")
        response = await app.client().get("/verify", headers={"Authorization": f"Bearer {body['token']}"})
        assert response.status_code == 200
        assert response.headers["x-identity-user-id"] == body["user"]["id"]
        assert response.headers["x-identity-role"] == "USER"
        assert "x-auth-user-id" not in response.headers
