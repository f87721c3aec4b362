"""Traefik ForwardAuth and Envoy ext_authz request shapes, the client address, failure modes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from services.auth.api.verify import BanNotice
from tests.integration.proxy_shapes import (
    CLIENT_IP,
    ENVOY_METHODS,
    OUTSIDER_PEER,
    PROXY_PEER,
    TRUSTED,
    Shapes,
    assert_allowed,
    assert_forbidden,
    assert_unauthorized,
)
from tests.integration.support import IDENTITY_HEADERS

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
    outsider = shapes.app.new_client(OUTSIDER_PEER)
    # An outsider cannot pin the banned address on the request...
    framed = await shapes.traefik(shapes.user["token"], client_ip=CLIENT_IP, client=outsider)
    assert_allowed(framed, shapes.user)
    assert banned.seen[-1] == OUTSIDER_PEER
    # ...and a banned peer cannot escape by claiming another one.
    banned_peer = shapes.app.new_client(CLIENT_IP)
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
        client = app.new_client(PROXY_PEER)
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
        response = await app.new_client().get("/verify", headers={"Authorization": f"Bearer {body['token']}"})
        assert response.status_code == 200
        assert response.headers["x-identity-user-id"] == body["user"]["id"]
        assert response.headers["x-identity-role"] == "USER"
        assert "x-auth-user-id" not in response.headers
