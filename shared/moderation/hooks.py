"""What the engine reports, and to whom: a hook each caller passes in.

The engine never imports a service's counters: the moderation service hands it a hook
backed by its Prometheus metrics, auth's fallback a no-op, so auth's /metrics never
shows moderation's counters.
"""

from __future__ import annotations

from typing import Protocol


def subject_kind(subject: str) -> str:
    """`ip`, `user`, `net`, ...: the only part of a subject that may become a label."""
    return subject.split(":", 1)[0]


class EngineMetrics(Protocol):
    def ban(self, subject: str, automatic: bool) -> None:
        """A ban was recorded (automatic or manual)."""

    def unban(self, subject: str) -> None:
        """A ban was lifted."""

    def login(self) -> None:
        """A login event was counted (for a global login-rate alarm)."""


class NoMetrics:
    """The hook for callers that keep no moderation metrics (auth's fallback, tests)."""

    def ban(self, subject: str, automatic: bool) -> None:
        return None

    def unban(self, subject: str) -> None:
        return None

    def login(self) -> None:
        return None


NO_METRICS: EngineMetrics = NoMetrics()
