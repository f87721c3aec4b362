"""Event types, their limits and violation scores, and the ban policy, read from the environment.

Names and defaults follow LibreChat (windows in minutes, ban durations as ms
expressions) so an existing `.env` keeps its meaning. The differences are
deliberate and documented in `services/moderation/README.md`.

This module is plain data with no web or store imports: the auth service's
moderation client reads the same limits from it for its fail-open fallback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal, get_args

from shared.config import ConfigError, Env, IPNetwork, exempt_networks

# What a caller can report as a violation (the moderation API's `type` for reports).
ViolationType = Literal[
    "login",
    "register",
    "refresh",
    "logout",
    "message",
    "concurrent_message",
    "reset_password",
    "verify_email",
    "non_browser",
    "illegal_model",
]
# A failed login is a fact the account throttle counts, not a violation of its own.
EventType = Literal[ViolationType, "login_failed"]
EVENT_TYPES: Final[tuple[str, ...]] = get_args(EventType)
VIOLATION_TYPES: Final[tuple[str, ...]] = get_args(ViolationType)
# Types whose every occurrence is a violation (the caller detected the abuse).
ALWAYS_VIOLATION: Final[frozenset[str]] = frozenset({"non_browser", "illegal_model"})
# What the auth service reports, and so all its moderation key may hold (least privilege): never
# `report-user` (auth sends no user_id) nor the chat service's types (`message`, `non_browser`, ...).
AUTH_EVENT_TYPES: Final[tuple[str, ...]] = (
    "login",
    "login_failed",
    "register",
    "refresh",
    "logout",
    "reset_password",
    "verify_email",
)
# Types with a second limit for the step that submits a mailed token (LibreChat's `*_SUBMISSION_*`).
SUBMITTABLE: Final[frozenset[str]] = frozenset({"reset_password", "verify_email"})
AUTH_KEY_SCOPES: Final[str] = "+".join(("report", *AUTH_EVENT_TYPES))

# Score variable per violation type (LibreChat's names where it has one).
SCORE_VARIABLES: Final[dict[str, tuple[str, int]]] = {
    "login": ("LOGIN_VIOLATION_SCORE", 1),
    "register": ("REGISTRATION_VIOLATION_SCORE", 1),
    "refresh": ("REFRESH_VIOLATION_SCORE", 1),
    "logout": ("LOGOUT_VIOLATION_SCORE", 1),
    "message": ("MESSAGE_VIOLATION_SCORE", 1),
    "concurrent_message": ("CONCURRENT_VIOLATION_SCORE", 1),
    "reset_password": ("RESET_PASSWORD_VIOLATION_SCORE", 1),
    "verify_email": ("VERIFY_EMAIL_VIOLATION_SCORE", 1),
    "reset_password_submission": ("RESET_PASSWORD_SUBMISSION_VIOLATION_SCORE", 1),
    "verify_email_submission": ("VERIFY_EMAIL_SUBMISSION_VIOLATION_SCORE", 1),
    # The login's second step (/api/auth/2fa/verify-temp); unset, it scores as a login (LibreChat).
    "two_factor_temp": ("TWO_FACTOR_TEMP_VIOLATION_SCORE", 1),
    # LibreChat's 20 equals its ban threshold, so one request banned: see the README.
    "non_browser": ("NON_BROWSER_VIOLATION_SCORE", 5),
    "illegal_model": ("ILLEGAL_MODEL_REQ_SCORE", 5),
}

# A concurrent-message lease that is never released frees itself after this (LibreChat: 60 s).
CONCURRENT_LEASE_MS: Final = 60_000
MINUTE_MS: Final = 60_000
NIST_MAX_FAILURES: Final = 100


@dataclass(frozen=True)
class Limit:
    """At most `max` occurrences within a sliding window of `window_ms`."""

    max: int
    window_ms: int


@dataclass(frozen=True)
class Limits:
    """Every rate limit; `None` means the limiter is switched off."""

    login: Limit = Limit(7, 5 * MINUTE_MS)
    register: Limit = Limit(5, 60 * MINUTE_MS)
    refresh: Limit = Limit(100, 5 * MINUTE_MS)
    logout: Limit = Limit(100, 5 * MINUTE_MS)
    login_net48: Limit = Limit(100, 5 * MINUTE_MS)  # all logins of one IPv6 /48 together
    login_alarm_per_minute: int = 1000  # per replica; raises authgate_moderation_login_alarm
    reset_password: Limit = Limit(2, 2 * MINUTE_MS)
    verify_email: Limit = Limit(2, 2 * MINUTE_MS)
    reset_password_submission: Limit = Limit(2, 2 * MINUTE_MS)
    verify_email_submission: Limit = Limit(2, 2 * MINUTE_MS)
    two_factor_temp: Limit = Limit(7, 5 * MINUTE_MS)  # per IP and per user; LOGIN_MAX/_WINDOW unset
    message_ip: Limit | None = Limit(40, MINUTE_MS)
    message_user: Limit | None = Limit(40, MINUTE_MS)
    concurrent_messages: int | None = 2
    login_account: Limit = Limit(10, 15 * MINUTE_MS)
    login_device_max: int = 20


@dataclass(frozen=True)
class BanPolicy:
    """When scores turn into bans and for how long."""

    enabled: bool = True
    interval: int = 20
    violation_window_ms: int = 60 * MINUTE_MS
    duration_ms: int = 2 * 60 * MINUTE_MS
    escalation_window_ms: int = 7 * 24 * 60 * MINUTE_MS
    escalation_factor: float = 2.0
    max_duration_ms: int = 7 * 24 * 60 * MINUTE_MS

    @property
    def automatic(self) -> bool:
        """BAN_VIOLATIONS=false or BAN_DURATION<=0 stop automatic bans; scoring goes on."""
        return self.enabled and self.duration_ms > 0


def _default_scores() -> MappingProxyType[str, int]:
    return MappingProxyType({kind: default for kind, (_, default) in SCORE_VARIABLES.items()})


@dataclass(frozen=True)
class Policy:
    limits: Limits = field(default_factory=Limits)
    scores: MappingProxyType[str, int] = field(default_factory=_default_scores)
    bans: BanPolicy = field(default_factory=BanPolicy)
    exempt: tuple[IPNetwork, ...] = ()

    def score(self, violation: str) -> int:
        return self.scores.get(violation, 0)


# Parsing ---------------------------------------------------------------------------------


def window_ms(env: Env, name: str, default_minutes: float) -> int:
    """A window in minutes (fractions allowed, for tests) as whole milliseconds."""
    minutes = env.number(name, default_minutes)
    result = round(minutes * MINUTE_MS)
    if result <= 0:
        raise ConfigError(name, f"must be a positive number of minutes, got {minutes:g}")
    return result


def _limit(env: Env, max_name: str, window_name: str, default_max: int, default_minutes: float) -> Limit:
    return Limit(env.integer(max_name, default_max, minimum=1), window_ms(env, window_name, default_minutes))


def _submission_limit(env: Env, prefix: str, request: Limit) -> Limit:
    """`<PREFIX>_SUBMISSION_MAX`/`_WINDOW`, each inheriting the request limit's value (LibreChat)."""
    return Limit(
        env.integer(f"{prefix}_SUBMISSION_MAX", request.max, minimum=1),
        window_ms(env, f"{prefix}_SUBMISSION_WINDOW", request.window_ms / MINUTE_MS),
    )


def load_limits(env: Env) -> Limits:
    """Every limit variable, parsed once for both the service and the auth client's fallback."""
    account = _limit(env, "LOGIN_ACCOUNT_MAX", "LOGIN_ACCOUNT_WINDOW", 10, 15)
    if account.max > NIST_MAX_FAILURES:
        raise ConfigError("LOGIN_ACCOUNT_MAX", f"must be <= {NIST_MAX_FAILURES} (NIST SP 800-63B)")
    device_max = env.integer("LOGIN_DEVICE_MAX", 20, minimum=1)
    if device_max > NIST_MAX_FAILURES:
        raise ConfigError("LOGIN_DEVICE_MAX", f"must be <= {NIST_MAX_FAILURES} (NIST SP 800-63B)")
    if device_max < account.max:
        raise ConfigError("LOGIN_DEVICE_MAX", "must be >= LOGIN_ACCOUNT_MAX: a device cookie widens the door")
    reset = _limit(env, "RESET_PASSWORD_MAX", "RESET_PASSWORD_WINDOW", 2, 2)
    verify = _limit(env, "VERIFY_EMAIL_MAX", "VERIFY_EMAIL_WINDOW", 2, 2)
    message_ip = _limit(env, "MESSAGE_IP_MAX", "MESSAGE_IP_WINDOW", 40, 1)
    message_user = _limit(env, "MESSAGE_USER_MAX", "MESSAGE_USER_WINDOW", 40, 1)
    concurrent = env.integer("CONCURRENT_MESSAGE_MAX", 2, minimum=1)
    login = _limit(env, "LOGIN_MAX", "LOGIN_WINDOW", 7, 5)
    net48_max = env.integer("LOGIN_NET48_MAX", 100, minimum=1)
    net48 = Limit(net48_max, window_ms(env, "LOGIN_NET48_WINDOW", login.window_ms / MINUTE_MS))
    return Limits(
        login=login,
        login_net48=net48,
        login_alarm_per_minute=env.integer("LOGIN_ALARM_PER_MINUTE", 1000, minimum=1),
        register=_limit(env, "REGISTER_MAX", "REGISTER_WINDOW", 5, 60),
        refresh=_limit(env, "REFRESH_MAX", "REFRESH_WINDOW", 100, 5),
        logout=_limit(env, "LOGOUT_MAX", "LOGOUT_WINDOW", 100, 5),
        reset_password=reset,
        verify_email=verify,
        reset_password_submission=_submission_limit(env, "RESET_PASSWORD", reset),
        verify_email_submission=_submission_limit(env, "VERIFY_EMAIL", verify),
        two_factor_temp=_limit(
            env, "TWO_FACTOR_TEMP_MAX", "TWO_FACTOR_TEMP_WINDOW", login.max, login.window_ms / MINUTE_MS
        ),
        message_ip=message_ip if env.boolean("LIMIT_MESSAGE_IP", True) else None,
        message_user=message_user if env.boolean("LIMIT_MESSAGE_USER", True) else None,
        concurrent_messages=concurrent if env.boolean("LIMIT_CONCURRENT_MESSAGES", True) else None,
        login_account=account,
        login_device_max=device_max,
    )


def load_ban_policy(env: Env) -> BanPolicy:
    policy = BanPolicy(
        enabled=env.boolean("BAN_VIOLATIONS", True),
        interval=env.integer("BAN_INTERVAL", 20, minimum=1),
        violation_window_ms=window_ms(env, "VIOLATION_WINDOW", 60),
        duration_ms=env.duration_ms("BAN_DURATION", "1000 * 60 * 60 * 2", allow_non_positive=True),
        escalation_window_ms=env.duration_ms("BAN_ESCALATION_WINDOW", "1000 * 60 * 60 * 24 * 7"),
        escalation_factor=env.number("BAN_ESCALATION_FACTOR", 2.0, minimum=1.0),
        max_duration_ms=env.duration_ms("BAN_MAX_DURATION", "1000 * 60 * 60 * 24 * 7"),
    )
    if policy.duration_ms > 0 and policy.max_duration_ms < policy.duration_ms:
        raise ConfigError("BAN_MAX_DURATION", "must be >= BAN_DURATION")
    return policy


def load_scores(env: Env, interval: int) -> MappingProxyType[str, int]:
    """Scores per type; none may reach the ban threshold alone, so no single report can ban."""
    scores: dict[str, int] = {}
    for kind, (name, default) in SCORE_VARIABLES.items():
        if kind == "two_factor_temp":
            default = scores["login"]  # LibreChat: TWO_FACTOR_TEMP_VIOLATION_SCORE ?? LOGIN_VIOLATION_SCORE
        value = env.integer(name, default, minimum=0)
        if value >= interval:
            raise ConfigError(
                name, f"must be below BAN_INTERVAL ({interval}) so that no single report can ban"
            )
        scores[kind] = value
    return MappingProxyType(scores)


def load_policy(env: Env) -> Policy:
    bans = load_ban_policy(env)
    return Policy(
        limits=load_limits(env),
        scores=load_scores(env, bans.interval),
        bans=bans,
        exempt=exempt_networks(env),
    )
