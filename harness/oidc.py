"""A real OpenID provider for the tests: panva's `oidc-provider` on Node, configured per start.

`harness/oidc_provider/` is a small Node project (package.json + package-lock.json; its
node_modules installed by scripts/install_tools.sh with `npm ci`). `start_oidc_provider`
writes a JSON configuration (clients, accounts, signing keys) and runs `server.mjs` on a free
port; the provider's issuer is `http://127.0.0.1:<port>`. Back-channel logout tokens the
provider sends are caught by a small local receiver (`LogoutInbox`), since the in-process
app under test has no socket of its own: the test hands them on.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import RSAKey

from harness.processes import ROOT, Server, free_port, start_process

PROVIDER_DIR = ROOT / "harness" / "oidc_provider"
CLIENT_ID = "authgate"
CLIENT_SECRET = "harness-client-secret-0123456789abcdef"
PUBLIC_CLIENT_ID = "authgate-public"


def node_binary() -> str | None:
    return shutil.which("node")


def provider_installed() -> bool:
    return node_binary() is not None and (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir()


def signing_jwks() -> dict[str, Any]:
    """A fresh RS256 key set (private), for one provider (or two sharing keys)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = RSAKey.import_key(private)
    data = key.as_dict(private=True)
    data.update({"use": "sig", "alg": "RS256", "kid": key.thumbprint()})
    return {"keys": [data]}


def default_accounts() -> dict[str, dict[str, Any]]:
    """Logins the interaction form accepts, each an account with its claims."""
    return {
        "alice": {
            "sub": "sub-alice",
            "email": "alice@idp.example.com",
            "email_verified": True,
            "name": "Alice Provider",
            "preferred_username": "alice",
            "roles": ["chat-user"],
        },
        "admin": {
            "sub": "sub-admin",
            "email": "boss@idp.example.com",
            "email_verified": True,
            "name": "Admin Provider",
            "preferred_username": "boss",
            "roles": ["chat-user", "chat-admin"],
        },
        "norole": {
            "sub": "sub-norole",
            "email": "norole@idp.example.com",
            "email_verified": True,
            "name": "No Role",
            "roles": [],
        },
        "unverified": {
            "sub": "sub-unverified",
            "email": "unverified@idp.example.com",
            "email_verified": False,
            "name": "Unverified Address",
            "roles": ["chat-user"],
        },
    }


@dataclass
class LogoutInbox:
    """Receives the provider's back-channel logout POSTs (form field `logout_token`)."""

    tokens: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/backchannel"

    def start(self) -> LogoutInbox:
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = parse_qs(self.rfile.read(length).decode())
                inbox.tokens.extend(body.get("logout_token", []))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@dataclass
class OidcProvider:
    server: Server
    issuer: str
    jwks: dict[str, Any]

    def stop(self) -> None:
        self.server.stop()


def client_metadata(
    redirect_uri: str,
    *,
    post_logout: str | None = None,
    backchannel: str | None = None,
    id_token_ttl: int | None = None,
    **extra: Any,
) -> list[dict[str, Any]]:
    """The confidential client and the public (PKCE, no secret) one, both for `redirect_uri`;
    `id_token_ttl` < 0 makes expired ID tokens, `extra` is more client metadata for both."""
    common: dict[str, Any] = {"redirect_uris": [redirect_uri], "grant_types": ["authorization_code"], **extra}
    if post_logout:
        common["post_logout_redirect_uris"] = [post_logout]
    if backchannel:
        common.update(backchannel_logout_uri=backchannel, backchannel_logout_session_required=True)
    if id_token_ttl:
        common["id_token_ttl"] = id_token_ttl
    return [
        {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **common},
        {"client_id": PUBLIC_CLIENT_ID, "token_endpoint_auth_method": "none", **common},
    ]


def start_oidc_provider(
    clients: list[dict[str, Any]],
    *,
    accounts: Mapping[str, dict[str, Any]] | None = None,
    jwks: dict[str, Any] | None = None,
    mixup_of: str | None = None,
    log_dir: Path | None = None,
) -> OidcProvider:
    """Start `server.mjs` on a free port; raises with its log when it does not come up."""
    node = node_binary()
    if not provider_installed() or node is None:
        raise RuntimeError("oidc-provider is not installed: run `make tools` (scripts/install_tools.sh)")
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    keys = jwks or signing_jwks()
    config: dict[str, Any] = {
        "port": port,
        "issuer": issuer,
        "jwks": keys,
        "clients": clients,
        "accounts": dict(accounts if accounts is not None else default_accounts()),
    }
    if mixup_of:
        config["mixup"] = {"path": "/mixup", "issuer_of": mixup_of}
    work = Path(tempfile.mkdtemp(prefix="authgate-oidc-"))
    config_path = work / "config.json"
    config_path.write_text(json.dumps(config))
    env = {"PATH": "/usr/bin:/bin", "OIDC_HARNESS_CONFIG": str(config_path), "NODE_ENV": "test"}
    server = start_process(
        [node, str(PROVIDER_DIR / "server.mjs")],
        port,
        (log_dir or work) / "oidc-provider.log",
        env=env,
        cwd=PROVIDER_DIR,
    )
    return OidcProvider(server, issuer, keys)


@dataclass
class ProfileApiStandIn:
    """The OAuth2 presets' profile APIs in their documented shapes: GitHub's `GET /user` and
    `GET /user/emails`, Discord's `GET /users/@me`, Facebook's Graph `GET /me?fields=…`. The bearer
    token is checked at the local provider's userinfo endpoint (an invalid one gets a 401) and the
    account it names answers in the provider's fields (numeric ids, as theirs are)."""

    userinfo_url: str
    accounts: dict[str, dict[str, Any]] = field(default_factory=default_accounts)
    server: ThreadingHTTPServer | None = None
    ids: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> ProfileApiStandIn:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                claims = stand_in.claims(self.headers.get("authorization", ""))
                if claims is None:
                    self.answer(401, {"message": "Bad credentials"})
                    return
                number = stand_in.ids.setdefault(str(claims["sub"]), 1000 + len(stand_in.ids))
                name, email = claims.get("name"), claims.get("email")
                verified = claims.get("email_verified") is True
                username = claims.get("preferred_username") or f"user{number}"
                path = self.path.split("?")[0]
                if path == "/user":  # GitHub: integer ids; the address comes from /user/emails
                    self.answer(
                        200, {"login": username, "id": number, "type": "User", "name": name, "email": None}
                    )
                elif path == "/user/emails":
                    self.answer(
                        200, [{"email": email, "primary": True, "verified": verified, "visibility": None}]
                    )
                elif path == "/users/@me":  # Discord: string snowflake ids
                    user = {"id": str(number), "username": username, "global_name": name, "email": email}
                    self.answer(200, {**user, "verified": verified})
                elif path == "/me":  # Facebook's Graph API
                    self.answer(200, {"id": str(number), "name": name, "email": email})
                else:
                    self.answer(404, {"message": "Not Found"})

            def answer(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def claims(self, authorization: str) -> dict[str, Any] | None:
        if not authorization.lower().startswith("bearer "):
            return None
        request = urllib.request.Request(self.userinfo_url, headers={"Authorization": authorization})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                sub = json.loads(response.read()).get("sub")
        except (urllib.error.URLError, ValueError, AttributeError):
            return None
        return next((account for account in self.accounts.values() if account["sub"] == sub), None)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
