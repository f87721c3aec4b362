"""Every auth-service variable, parsed and validated once at startup.

Names and semantics follow LibreChat where it has them; differences are listed in
the README's configuration table.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

from services.auth.mail.settings import MailSettings, load_mail_settings
from services.auth.moderation_client import ModerationClientSettings, load_moderation_client_settings
from services.auth.passkeys.settings import WebAuthnSettings, load_webauthn_settings
from services.auth.redirects import InvalidRedirectDomain, RedirectPolicy, canonical_host
from services.auth.store.uri import checked_mongo_uri
from shared.config import (
    DEVELOPMENT,
    ConfigError,
    Env,
    HttpLimits,
    IPNetwork,
    check_secret,
    environment,
    generate_dev_secret,
    load_http_limits,
)
from shared.http import ClientIPResolver, ServiceKey, parse_service_keys, proxy_settings

EMBEDDED_MONGO_PORT_FILE = "data/mongo.port"
# `make run`'s store requires a password (generated into data/secrets.env) for this user.
EMBEDDED_MONGO_USER = "authgate"
EMBEDDED_MONGO_PASSWORD = "EMBEDDED_MONGO_PASSWORD"
SERVICE_KEY_SCOPES = ("introspect",)


@dataclass(frozen=True)
class Argon2Params:
    memory_kib: int = 19456
    time_cost: int = 2
    parallelism: int = 1


@dataclass(frozen=True)
class AuthSettings:
    env: str
    host: str
    port: int
    jwt_secret: str
    jwt_refresh_secret: str
    mongo_uri: str
    moderation: ModerationClientSettings
    allow_email_login: bool = True
    allow_registration: bool = False
    allow_social_login: bool = False
    allow_social_registration: bool = False
    session_expiry_ms: int = 1000 * 60 * 15
    refresh_token_expiry_ms: int = 1000 * 60 * 60 * 24 * 7
    session_idle_timeout_ms: int = 1000 * 60 * 60 * 24
    refresh_grace_period_ms: int = 1000 * 10
    max_sessions_per_user: int = 50
    jwt_issuer: str = "authgate"
    jwt_audience: str = "authgate"
    min_password_length: int = 15
    password_min_strength: int = 3
    password_breach_check_url: str | None = None
    argon2: Argon2Params = field(default_factory=Argon2Params)
    hash_threads: int = 2
    hash_queue: int = 64
    domain_client: str | None = None
    domain_server: str | None = None
    redirects: RedirectPolicy = field(default_factory=lambda: RedirectPolicy(frozenset(), frozenset()))
    app_title: str = "authgate"
    openid_button_label: str = "Continue with OpenID"
    openid_image_url: str | None = None
    mail: MailSettings = field(default_factory=MailSettings)
    email_verification_expiry_ms: int = 1000 * 60 * 60 * 24
    allow_password_reset: bool = False
    password_reset_expiry_ms: int = 1000 * 60 * 15
    allow_unverified_email_login: bool = True
    client_ip: ClientIPResolver = field(default_factory=ClientIPResolver)
    mongo_timeout_ms: int = 2000
    mongo_db: str | None = None
    mongo_write_concern: str | int = "majority"
    audit_retention_days: int = 90
    service_keys: tuple[ServiceKey, ...] = ()
    log_level: str = "INFO"
    jwt_algorithm: str = "HS256"
    jwt_keys_dir: str | None = None
    jwks_max_age_s: int = 300
    verify_header_prefix: str = "X-Auth-"
    verify_max_staleness_ms: int = 1000
    verify_stale_grace_ms: int = 10_000
    verify_log_sample: float = 0.01
    verify_cache_size: int = 10_000
    management_host: str = "127.0.0.1"
    management_port: int = 9080
    http: HttpLimits = field(default_factory=HttpLimits)
    totp_encryption_key: str = field(default="", repr=False)
    totp_encryption_keys_old: tuple[str, ...] = field(default=(), repr=False)
    creds_key: str | None = field(default=None, repr=False)
    auth_cookie_name: str = "authgate_session"
    auth_cookie_domain: str | None = None
    auth_cookie_refresh_ms: int = 1000 * 60 * 5
    webauthn: WebAuthnSettings = field(default_factory=WebAuthnSettings)

    @property
    def development(self) -> bool:
        return self.env == DEVELOPMENT

    @property
    def session_cookie_name(self) -> str:
        """`__Host-` (no Domain, Secure, Path=/) unless the cookie is shared or served over http."""
        if self.auth_cookie_domain or self.development:
            return self.auth_cookie_name
        return "__Host-" + self.auth_cookie_name

    @property
    def trusted_proxies(self) -> tuple[IPNetwork, ...]:
        return self.client_ip.trusted


def _mongo_uri(env: Env, root: Path, development: bool) -> str:
    uri = env.secret("MONGO_URI")
    if uri is not None:
        return checked_mongo_uri(uri)
    port_file = root / EMBEDDED_MONGO_PORT_FILE
    if port_file.is_file():
        port = port_file.read_text().strip()
        if port.isdigit():
            password = env.secret(EMBEDDED_MONGO_PASSWORD)
            if password is None:
                return f"mongodb://127.0.0.1:{port}/authgate?retryWrites=false"
            login = f"{EMBEDDED_MONGO_USER}:{quote(password, safe='')}"
            return f"mongodb://{login}@127.0.0.1:{port}/authgate?retryWrites=false&authSource=admin"
    if development:
        return "mongodb://127.0.0.1:27017/authgate?retryWrites=false"
    raise ConfigError("MONGO_URI", "is required outside development")


def _jwt_secrets(env: Env, root: Path, development: bool) -> tuple[str, str]:
    values: list[str] = []
    for name in ("JWT_SECRET", "JWT_REFRESH_SECRET"):
        value = env.secret(name)
        check_secret(name, value, development=development)
        if value is None:
            value = generate_dev_secret(root, name, lambda: secrets.token_hex(32))
        values.append(value)
    if values[0] == values[1]:
        raise ConfigError("JWT_REFRESH_SECRET", "must differ from JWT_SECRET")
    return values[0], values[1]


def _totp_keys(env: Env, root: Path, development: bool, jwt: tuple[str, str]) -> tuple[str, tuple[str, ...]]:
    """TOTP secrets are sealed under their own key: never one derived from the JWT secrets, so
    rotating those (or leaking JWT_SECRET to LibreChat's API) leaves the secrets unreadable."""
    name = "TOTP_ENCRYPTION_KEY"
    value = env.secret(name)
    check_secret(name, value, development=development)
    if value is None:
        value = generate_dev_secret(root, name, lambda: secrets.token_hex(32))
    if value in jwt:
        raise ConfigError(name, "must differ from JWT_SECRET and JWT_REFRESH_SECRET")
    old = tuple(k.strip() for k in (env.secret("TOTP_ENCRYPTION_KEYS_OLD") or "").split(",") if k.strip())
    return value, old


def _creds_key(env: Env) -> str | None:
    """LibreChat's CREDS_KEY (64 hex characters), only to read its TOTP enrolments."""
    value = env.secret("CREDS_KEY")
    if value is None:
        return None
    try:
        valid = len(bytes.fromhex(value)) == 32
    except ValueError:
        valid = False
    if not valid:
        raise ConfigError("CREDS_KEY", "must be 64 hex characters (LibreChat's AES-256 key)")
    return value


def load_settings(env: Env | None = None, root: Path | None = None) -> AuthSettings:
    root = root if root is not None else Path.cwd()
    env = env if env is not None else Env.load(root)
    mode = environment(env)
    development = mode == DEVELOPMENT
    jwt_secret, jwt_refresh_secret = _jwt_secrets(env, root, development)
    totp_key, totp_old = _totp_keys(env, root, development, (jwt_secret, jwt_refresh_secret))
    title = env.string("APP_TITLE") or "authgate"
    mail = load_mail_settings(env, title, env.string("DOMAIN_CLIENT"), env.string("DOMAIN_SERVER"))
    trusted = env.networks("TRUSTED_PROXIES")
    hops = env.integer("TRUST_PROXY", 0, minimum=0)
    min_length = env.integer("MIN_PASSWORD_LENGTH", 15, minimum=1)
    if min_length > 128:
        raise ConfigError("MIN_PASSWORD_LENGTH", "must be <= 128 (the maximum password length)")
    strength = env.integer("PASSWORD_MIN_STRENGTH", 3, minimum=0)
    if strength > 4:
        raise ConfigError("PASSWORD_MIN_STRENGTH", "must be between 0 and 4")
    memory = env.integer("ARGON2_MEMORY_KIB", 19456, minimum=8)
    time_cost = env.integer("ARGON2_TIME_COST", 2, minimum=1)
    grace_ms = env.duration_ms("REFRESH_GRACE_PERIOD", "1000 * 10", allow_non_positive=True)
    if not env.relaxed:
        _check_floors(min_length, memory, time_cost, grace_ms)
    parallelism = env.integer("ARGON2_PARALLELISM", 1, minimum=1)
    return AuthSettings(
        env=mode,
        host=env.string("AUTH_HOST", "127.0.0.1") or "127.0.0.1",
        port=env.integer("AUTH_PORT", 3080, minimum=0),
        jwt_secret=jwt_secret,
        jwt_refresh_secret=jwt_refresh_secret,
        mongo_uri=_mongo_uri(env, root, development),
        moderation=load_moderation_client_settings(env, development),
        allow_email_login=env.boolean("ALLOW_EMAIL_LOGIN", True),
        allow_registration=env.boolean("ALLOW_REGISTRATION", False),
        allow_social_login=env.boolean("ALLOW_SOCIAL_LOGIN", False),
        allow_social_registration=env.boolean("ALLOW_SOCIAL_REGISTRATION", False),
        session_expiry_ms=env.duration_ms("SESSION_EXPIRY", "1000 * 60 * 15"),
        refresh_token_expiry_ms=env.duration_ms("REFRESH_TOKEN_EXPIRY", "(1000 * 60 * 60 * 24) * 7"),
        session_idle_timeout_ms=env.duration_ms("SESSION_IDLE_TIMEOUT", "1000 * 60 * 60 * 24"),
        refresh_grace_period_ms=grace_ms,
        max_sessions_per_user=env.integer("MAX_SESSIONS_PER_USER", 50, minimum=1),
        jwt_issuer=env.string("JWT_ISSUER", "authgate") or "authgate",
        jwt_audience=env.string("JWT_AUDIENCE", "authgate") or "authgate",
        min_password_length=min_length,
        password_min_strength=strength,
        password_breach_check_url=_breach_check_url(env.string("PASSWORD_BREACH_CHECK_URL")),
        argon2=Argon2Params(memory, time_cost, parallelism),
        hash_threads=env.integer("ARGON2_THREADS", 2, minimum=1),
        hash_queue=env.integer("ARGON2_MAX_QUEUE", 64, minimum=1),
        domain_client=env.string("DOMAIN_CLIENT"),
        domain_server=env.string("DOMAIN_SERVER"),
        redirects=_redirect_policy(env, development),
        app_title=env.string("APP_TITLE", "authgate") or "authgate",
        openid_button_label=env.string("OPENID_BUTTON_LABEL", "Continue with OpenID")
        or "Continue with OpenID",
        openid_image_url=env.string("OPENID_IMAGE_URL"),
        mail=mail,
        email_verification_expiry_ms=env.duration_ms("EMAIL_VERIFICATION_EXPIRY", "1000 * 60 * 60 * 24"),
        allow_password_reset=_password_reset(env, mail),
        password_reset_expiry_ms=env.duration_ms("PASSWORD_RESET_EXPIRY", "1000 * 60 * 15"),
        # Without mail nobody can verify an address, so unverified accounts may log in by default.
        allow_unverified_email_login=env.boolean("ALLOW_UNVERIFIED_EMAIL_LOGIN", not mail.configured),
        client_ip=proxy_settings(trusted, hops),
        mongo_timeout_ms=env.duration_ms("MONGO_TIMEOUT", "2000"),
        mongo_db=env.string("MONGO_DB"),
        mongo_write_concern=_write_concern(env),
        audit_retention_days=env.integer("AUDIT_RETENTION_DAYS", 90, minimum=1),
        service_keys=parse_service_keys(
            "AUTH_SERVICE_KEYS", env.secret("AUTH_SERVICE_KEYS"), SERVICE_KEY_SCOPES
        ),
        log_level=env.choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
        jwt_algorithm=env.choice("JWT_ALGORITHM", "HS256", ("HS256", "ES256", "RS256", "EdDSA")),
        jwt_keys_dir=env.string("JWT_KEYS_DIR"),
        jwks_max_age_s=env.integer("JWKS_MAX_AGE", 300, minimum=0),
        verify_header_prefix=_header_prefix(env.string("VERIFY_HEADER_PREFIX", "X-Auth-") or "X-Auth-"),
        verify_max_staleness_ms=env.duration_ms("VERIFY_MAX_STALENESS", "1000"),
        verify_stale_grace_ms=env.duration_ms("VERIFY_STALE_GRACE", "1000 * 10"),
        verify_log_sample=_fraction(env.number("VERIFY_LOG_SAMPLE", 0.01, minimum=0.0)),
        verify_cache_size=env.integer("VERIFY_CACHE_SIZE", 10_000, minimum=0),
        management_host=env.string("AUTH_MANAGEMENT_HOST")
        or env.string("AUTH_HOST", "127.0.0.1")
        or "127.0.0.1",
        management_port=env.integer("AUTH_MANAGEMENT_PORT", 9080, minimum=0),
        http=load_http_limits(env),
        totp_encryption_key=totp_key,
        totp_encryption_keys_old=totp_old,
        creds_key=_creds_key(env),
        auth_cookie_name=_cookie_name(env),
        auth_cookie_domain=_cookie_domain(env),
        auth_cookie_refresh_ms=env.duration_ms("AUTH_COOKIE_REFRESH", "1000 * 60 * 5"),
        webauthn=load_webauthn_settings(env, title, env.string("DOMAIN_SERVER"), development=development),
    )


# OWASP's argon2id configurations (memory KiB, iterations), all of equal strength; parameters at
# least as strong as one of them pass.
OWASP_ARGON2ID = ((47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5))
MIN_PASSWORD_FLOOR = 8  # NIST 800-63B
MAX_REFRESH_GRACE_MS = 60_000  # a replayed refresh token is honoured for at most a minute


def _check_floors(min_length: int, memory_kib: int, time_cost: int, grace_ms: int) -> None:
    """Production refuses what a typo or a copied test setting would quietly weaken."""
    if min_length < MIN_PASSWORD_FLOOR:
        raise ConfigError("MIN_PASSWORD_LENGTH", f"must be >= {MIN_PASSWORD_FLOOR} outside development")
    if not any(memory_kib >= m and time_cost >= t for m, t in OWASP_ARGON2ID):
        raise ConfigError(
            "ARGON2_MEMORY_KIB",
            f"{memory_kib} KiB with ARGON2_TIME_COST={time_cost} is weaker than every OWASP argon2id "
            "configuration (47104/1, 19456/2, 12288/3, 9216/4, 7168/5)",
        )
    if grace_ms > MAX_REFRESH_GRACE_MS:
        raise ConfigError("REFRESH_GRACE_PERIOD", f"must be at most {MAX_REFRESH_GRACE_MS} ms (one minute)")


def _header_prefix(value: str) -> str:
    if not all(ch.isalnum() or ch == "-" for ch in value):
        raise ConfigError("VERIFY_HEADER_PREFIX", "may contain only letters, digits and '-'")
    return value


def _fraction(value: float) -> float:
    if value > 1:
        raise ConfigError("VERIFY_LOG_SAMPLE", "must be between 0 and 1")
    return value


def _breach_check_url(value: str | None) -> str | None:
    """Off when unset; otherwise an http(s) base URL the SHA-1 prefix is appended to."""
    if not value:
        return None
    if not value.startswith(("https://", "http://")):
        raise ConfigError("PASSWORD_BREACH_CHECK_URL", "must be an http:// or https:// URL")
    return value


def _password_reset(env: Env, mail: MailSettings) -> bool:
    """Reset links travel only by mail (never in an answer), so reset without mail cannot work."""
    allowed = env.boolean("ALLOW_PASSWORD_RESET", False)
    if allowed and not mail.configured:
        raise ConfigError(
            "ALLOW_PASSWORD_RESET", "needs mail: set EMAIL_HOST (or EMAIL_SERVICE) and EMAIL_FROM"
        )
    return allowed


def _write_concern(env: Env) -> str | int:
    """`majority` (the default) or a number of members; 0 (unacknowledged) is refused."""
    value = (env.string("MONGO_WRITE_CONCERN", "majority") or "majority").strip()
    if value == "majority":
        return value
    if not value.isdigit() or int(value) < 1:
        raise ConfigError("MONGO_WRITE_CONCERN", "must be `majority` or a number of members >= 1")
    return int(value)


def _redirect_policy(env: Env, development: bool) -> RedirectPolicy:
    """`AUTH_REDIRECT_DOMAINS`, by default the hosts of DOMAIN_CLIENT and DOMAIN_SERVER."""
    listed = env.string("AUTH_REDIRECT_DOMAINS")
    if listed is not None:
        entries = listed.split(",")
    else:
        hosts = (urlsplit(env.string(name) or "").hostname for name in ("DOMAIN_CLIENT", "DOMAIN_SERVER"))
        entries = [h for h in hosts if h and canonical_host(h)]
    try:
        return RedirectPolicy.parse(entries, allow_http=development)
    except InvalidRedirectDomain as exc:
        raise ConfigError("AUTH_REDIRECT_DOMAINS", str(exc)) from None


_COOKIE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _cookie_name(env: Env) -> str:
    name = env.string("AUTH_COOKIE_NAME", "authgate_session") or "authgate_session"
    if not _COOKIE_NAME.match(name) or name.lower().startswith(("__host-", "__secure-")):
        raise ConfigError("AUTH_COOKIE_NAME", "letters, digits, '_' and '-' only, without a __ prefix")
    return name


def _cookie_domain(env: Env) -> str | None:
    """`example.com` or `.example.com`: the session cookie then covers every subdomain."""
    value = env.string("AUTH_COOKIE_DOMAIN")
    if not value:
        return None
    host = canonical_host(value.lstrip("."))
    if host is None or "." not in host:
        raise ConfigError("AUTH_COOKIE_DOMAIN", "must be a registrable domain such as example.com")
    return host
