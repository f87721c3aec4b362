"""Per-check fail modes: what a check does when moderation cannot give a usable answer.

`open` answers from the in-process fallback limiter; `closed` refuses with 503
`moderation_unavailable`. `MODERATION_FAIL_MODE` names them per check (login, register, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from shared.config import ConfigError
from shared.errors import DomainError, ErrorCode
from shared.moderation.policy import EVENT_TYPES

FailMode = Literal["open", "closed"]
# A failed login shares the login check's fail mode.
CHECKS = tuple(t for t in EVENT_TYPES if t != "login_failed")
DEFAULT_FAIL_MODES: Mapping[str, FailMode] = MappingProxyType(
    {"login": "open", "register": "closed", "refresh": "open"}
)


def fail_mode_of(modes: Mapping[str, FailMode], event_type: str) -> FailMode:
    check = "login" if event_type == "login_failed" else event_type
    return modes.get(check, "open")


def parse_fail_modes(name: str, value: str | None) -> Mapping[str, FailMode]:
    modes: dict[str, FailMode] = dict(DEFAULT_FAIL_MODES)
    for entry in (value or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        check, sep, mode = (part.strip() for part in entry.partition("="))
        if not sep or check not in CHECKS:
            raise ConfigError(
                name, f"entries look like check=open|closed with a check in {', '.join(CHECKS)}"
            )
        if mode not in ("open", "closed"):
            raise ConfigError(name, f"mode for {check!r} must be open or closed, got {mode!r}")
        modes[check] = "open" if mode == "open" else "closed"
    return MappingProxyType(modes)


class ModerationUnavailableError(DomainError):
    """A `closed` check refused because moderation gave no usable answer."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            ErrorCode.MODERATION_UNAVAILABLE,
            "Abuse protection is unavailable; retry shortly.",
            retry_after=retry_after,
        )
