"""LibreChat's OPENID_* variables (and the social sign-in rules around them), checked at startup.

A half-configured provider is a startup error naming the missing variable: a typo must never
leave a button that cannot work, nor a provider that silently accepts less than intended.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from shared.config import ConfigError, Env
from shared.crypto import derive_key

TOKEN_KINDS = ("id", "access", "userinfo")
DEFAULT_SCOPE = "openid profile email"
DEFAULT_CALLBACK = "/oauth/openid/callback"
DEFAULT_CLOCK_TOLERANCE_S = 60  # LibreChat: 300 s; one minute is enough for honest clock drift
PROVIDERS = ("google", "facebook", "openid", "github", "discord")
_FLOW_KEY_INFO = b"authgate-oauth-flow-state"


@dataclass(frozen=True)
class RoleRule:
    """Where a role is read: which token, and the dotted path of the claim in it."""

    roles: tuple[str, ...]
    token_kind: str
    path: str


@dataclass(frozen=True)
class OpenIdSettings:
    """One OpenID Connect provider: the generic one (`openid`) or a preset (`google`)."""

    client_id: str
    client_secret: str | None = field(repr=False)
    issuer: str
    scope: str = DEFAULT_SCOPE
    callback_path: str = DEFAULT_CALLBACK
    use_pkce: bool = False
    clock_tolerance_s: int = DEFAULT_CLOCK_TOLERANCE_S
    required_role: RoleRule | None = None
    admin_role: RoleRule | None = None
    username_claim: str | None = None
    name_claim: str | None = None
    email_claim: str | None = None
    auto_redirect: bool = False
    use_end_session_endpoint: bool = False
    post_logout_redirect_uri: str | None = None
    name: str = "openid"
    link_field: str = "openidId"  # LibreChat's user field for the provider's subject
    issuer_field: str | None = "openidIssuer"  # None: one fixed issuer (a preset), not stored
    # OAuth2 presets without discovery (GitHub): their endpoints, each overridable.
    authorize_url: str = ""
    token_url: str = ""
    api_url: str = ""


@dataclass(frozen=True)
class SocialSettings:
    openid: OpenIdSettings | None = None
    google: OpenIdSettings | None = None
    github: OpenIdSettings | None = None
    discord: OpenIdSettings | None = None
    facebook: OpenIdSettings | None = None
    flow_key: bytes = field(default=b"", repr=False)
    auto_link_verified: bool = False
    registration_allowed_domains: tuple[str, ...] = ()
    social_logins: tuple[str, ...] = ()

    @property
    def configured(self) -> tuple[str, ...]:
        """The providers whose variables are complete, in LibreChat's default order."""
        found = {p.name: p for p in self.providers}
        return tuple(name for name in PROVIDERS if found.get(name) is not None)

    @property
    def providers(self) -> tuple[OpenIdSettings, ...]:
        every = (self.openid, self.google, self.github, self.discord, self.facebook)
        return tuple(p for p in every if p is not None)


def _role_rule(env: Env, prefix: str) -> RoleRule | None:
    value = env.string(prefix)
    if not value:
        return None
    roles = tuple(r.strip() for r in value.split(",") if r.strip())
    path = env.string(f"{prefix}_PARAMETER_PATH")
    if not path:
        raise ConfigError(f"{prefix}_PARAMETER_PATH", f"is required with {prefix} (e.g. `roles`)")
    kind = env.choice(f"{prefix}_TOKEN_KIND", "id", TOKEN_KINDS)
    return RoleRule(roles, kind, path)


def _openid(env: Env, domain_server: str | None) -> OpenIdSettings | None:
    present = {
        "OPENID_CLIENT_ID": bool(env.string("OPENID_CLIENT_ID")),
        "OPENID_ISSUER": bool(env.string("OPENID_ISSUER")),
        "OPENID_CLIENT_SECRET": bool(env.secret("OPENID_CLIENT_SECRET")),  # or OPENID_CLIENT_SECRET_FILE
    }
    if not any(present.values()):
        return None
    use_pkce = env.boolean("OPENID_USE_PKCE", False)
    required = ["OPENID_CLIENT_ID", "OPENID_ISSUER"] + ([] if use_pkce else ["OPENID_CLIENT_SECRET"])
    for name in required:
        if not present[name]:
            hint = " (or OPENID_USE_PKCE=true for a public client)" if name == "OPENID_CLIENT_SECRET" else ""
            raise ConfigError(name, f"is required when OpenID sign-in is configured{hint}")
    if not domain_server:
        raise ConfigError("DOMAIN_SERVER", "is required for OpenID sign-in (the callback URL is built on it)")
    issuer = _checked_issuer("OPENID_ISSUER", env.string("OPENID_ISSUER") or "")
    callback = env.string("OPENID_CALLBACK_URL", DEFAULT_CALLBACK) or DEFAULT_CALLBACK
    if callback != DEFAULT_CALLBACK:
        raise ConfigError("OPENID_CALLBACK_URL", f"must be {DEFAULT_CALLBACK} (the only callback route)")
    return OpenIdSettings(
        client_id=env.string("OPENID_CLIENT_ID") or "",
        client_secret=env.secret("OPENID_CLIENT_SECRET"),
        issuer=issuer,
        scope=env.string("OPENID_SCOPE", DEFAULT_SCOPE) or DEFAULT_SCOPE,
        callback_path=callback,
        use_pkce=use_pkce,
        clock_tolerance_s=env.integer("OPENID_CLOCK_TOLERANCE", DEFAULT_CLOCK_TOLERANCE_S, minimum=0),
        required_role=_role_rule(env, "OPENID_REQUIRED_ROLE"),
        admin_role=_role_rule(env, "OPENID_ADMIN_ROLE"),
        username_claim=env.string("OPENID_USERNAME_CLAIM"),
        name_claim=env.string("OPENID_NAME_CLAIM"),
        email_claim=env.string("OPENID_EMAIL_CLAIM"),
        auto_redirect=env.boolean("OPENID_AUTO_REDIRECT", False),
        use_end_session_endpoint=env.boolean("OPENID_USE_END_SESSION_ENDPOINT", False),
        post_logout_redirect_uri=env.string("OPENID_POST_LOGOUT_REDIRECT_URI"),
    )


GOOGLE_ISSUER = "https://accounts.google.com"
GOOGLE_CALLBACK = "/oauth/google/callback"


def _checked_issuer(name: str, issuer: str) -> str:
    issuer = issuer.rstrip("/")
    loopback = issuer.startswith(("http://127.0.0.1:", "http://localhost:", "http://[::1]:"))
    if not issuer.startswith("https://") and not loopback:
        raise ConfigError(name, "must be an https:// URL (plain http only on loopback)")
    return issuer


def _google(env: Env, domain_server: str | None) -> OpenIdSettings | None:
    """LibreChat's Google preset, as OpenID Connect; GOOGLE_ISSUER overrides the discovery URL."""
    client_id, secret = env.string("GOOGLE_CLIENT_ID"), env.secret("GOOGLE_CLIENT_SECRET")
    if not client_id and not secret:
        return None
    for name, value in (("GOOGLE_CLIENT_ID", client_id), ("GOOGLE_CLIENT_SECRET", secret)):
        if not value:
            raise ConfigError(name, "is required when Google sign-in is configured")
    if not domain_server:
        raise ConfigError("DOMAIN_SERVER", "is required for Google sign-in (the callback URL is built on it)")
    callback = env.string("GOOGLE_CALLBACK_URL", GOOGLE_CALLBACK) or GOOGLE_CALLBACK
    if callback != GOOGLE_CALLBACK:
        raise ConfigError("GOOGLE_CALLBACK_URL", f"must be {GOOGLE_CALLBACK} (the only callback route)")
    return OpenIdSettings(
        client_id=client_id or "",
        client_secret=secret,
        issuer=_checked_issuer("GOOGLE_ISSUER", env.string("GOOGLE_ISSUER", GOOGLE_ISSUER) or GOOGLE_ISSUER),
        callback_path=callback,
        clock_tolerance_s=env.integer("OPENID_CLOCK_TOLERANCE", DEFAULT_CLOCK_TOLERANCE_S, minimum=0),
        name="google",
        link_field="googleId",
        issuer_field=None,
    )


GITHUB_CALLBACK = "/oauth/github/callback"


def _url(env: Env, name: str, default: str) -> str:
    value = (env.string(name) or default).rstrip("/")
    return _checked_issuer(name, value)


def _oauth2_client(env: Env, prefix: str, label: str, domain_server: str | None) -> tuple[str, str] | None:
    """`<PREFIX>_CLIENT_ID` and `_SECRET`, both or neither; the callback path must be the default."""
    client_id, secret = env.string(f"{prefix}_CLIENT_ID"), env.secret(f"{prefix}_CLIENT_SECRET")
    if not client_id and not secret:
        return None
    for name, value in ((f"{prefix}_CLIENT_ID", client_id), (f"{prefix}_CLIENT_SECRET", secret)):
        if not value:
            raise ConfigError(name, f"is required when {label} sign-in is configured")
    if not domain_server:
        raise ConfigError(
            "DOMAIN_SERVER", f"is required for {label} sign-in (the callback URL is built on it)"
        )
    default = f"/oauth/{prefix.lower()}/callback"
    callback = env.string(f"{prefix}_CALLBACK_URL", default) or default
    if callback != default:
        raise ConfigError(f"{prefix}_CALLBACK_URL", f"must be {default} (the only callback route)")
    return client_id or "", secret or ""


def _github(env: Env, domain_server: str | None) -> OpenIdSettings | None:
    """LibreChat's GitHub preset: OAuth2 with its user and emails API (GitHub is not OpenID).

    GITHUB_ENTERPRISE_BASE_URL moves every endpoint to a GitHub Enterprise Server (as LibreChat);
    GITHUB_AUTHORIZATION_URL, GITHUB_TOKEN_URL and GITHUB_API_URL override one each.
    """
    client = _oauth2_client(env, "GITHUB", "GitHub", domain_server)
    if client is None:
        return None
    enterprise = env.string("GITHUB_ENTERPRISE_BASE_URL")
    base = (
        _url(env, "GITHUB_ENTERPRISE_BASE_URL", "https://github.com") if enterprise else "https://github.com"
    )
    api = base + "/api/v3" if enterprise else "https://api.github.com"
    return OpenIdSettings(
        client_id=client[0],
        client_secret=client[1],
        issuer=base,
        scope=env.string("GITHUB_SCOPE", "user:email") or "user:email",
        callback_path=GITHUB_CALLBACK,
        name="github",
        link_field="githubId",
        issuer_field=None,
        authorize_url=_url(env, "GITHUB_AUTHORIZATION_URL", base + "/login/oauth/authorize"),
        token_url=_url(env, "GITHUB_TOKEN_URL", base + "/login/oauth/access_token"),
        api_url=_url(env, "GITHUB_API_URL", api),
    )


# (issuer, authorization, token, profile API, scope) of the other OAuth2 presets, as LibreChat's.
OAUTH2_PRESETS = {
    "discord": (
        "https://discord.com",
        "https://discord.com/oauth2/authorize",
        "https://discord.com/api/oauth2/token",
        "https://discord.com/api",
        "identify email",
    ),
    "facebook": (
        "https://www.facebook.com",
        "https://www.facebook.com/v18.0/dialog/oauth",
        "https://graph.facebook.com/v18.0/oauth/access_token",
        "https://graph.facebook.com/v18.0",
        "public_profile email",
    ),
}


def _oauth2_preset(env: Env, name: str, label: str, domain_server: str | None) -> OpenIdSettings | None:
    """Discord and Facebook: OAuth2 + their profile API; each endpoint overridable
    (`<PREFIX>_AUTHORIZATION_URL`, `_TOKEN_URL`, `_API_URL`, `_SCOPE`)."""
    prefix = name.upper()
    client = _oauth2_client(env, prefix, label, domain_server)
    if client is None:
        return None
    issuer, authorize, token, api, scope = OAUTH2_PRESETS[name]
    return OpenIdSettings(
        client_id=client[0],
        client_secret=client[1],
        issuer=issuer,
        scope=env.string(f"{prefix}_SCOPE", scope) or scope,
        callback_path=f"/oauth/{name}/callback",
        name=name,
        link_field=f"{name}Id",
        issuer_field=None,
        authorize_url=_url(env, f"{prefix}_AUTHORIZATION_URL", authorize),
        token_url=_url(env, f"{prefix}_TOKEN_URL", token),
        api_url=_url(env, f"{prefix}_API_URL", api),
    )


def _domains(env: Env) -> tuple[str, ...]:
    raw = env.string("REGISTRATION_ALLOWED_DOMAINS") or ""
    return tuple(d.strip().lower().lstrip("@") for d in raw.split(",") if d.strip())


def load_social_settings(env: Env, domain_server: str | None, jwt_refresh_secret: str) -> SocialSettings:
    openid = _openid(env, domain_server)
    session_secret = env.secret("OPENID_SESSION_SECRET")
    key = derive_key(session_secret or jwt_refresh_secret, _FLOW_KEY_INFO)
    social = SocialSettings(
        openid=openid,
        google=_google(env, domain_server),
        github=_github(env, domain_server),
        discord=_oauth2_preset(env, "discord", "Discord", domain_server),
        facebook=_oauth2_preset(env, "facebook", "Facebook", domain_server),
        flow_key=key,
        auto_link_verified=env.boolean("SOCIAL_AUTO_LINK_VERIFIED", False),
        registration_allowed_domains=_domains(env),
    )
    listed = env.string("SOCIAL_LOGINS")
    order = tuple(p.strip() for p in listed.split(",") if p.strip()) if listed else social.configured
    unknown = [p for p in order if p not in (*PROVIDERS, "saml", "apple")]
    if unknown:
        raise ConfigError("SOCIAL_LOGINS", f"unknown provider {unknown[0]!r}")
    return replace(social, social_logins=order)
